// Starts Scalar on /docs/scalar/ with the fonts of the system, not Scalar's web fonts.
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var element = document.getElementById("scalar");
  Scalar.createApiReference(element, {
    url: new URL(element.dataset.openapi, document.baseURI).href,
    withDefaultFonts: false,
    theme: "purple",
    hideClientButton: true,
  });
});
