// Starts Swagger UI on /docs/swagger/ (no inline script: the page runs under script-src 'self').
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var element = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: new URL(element.dataset.openapi, document.baseURI).href,
    domNode: element,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
    validatorUrl: null, // no badge fetched from validator.swagger.io
    deepLinking: true,
  });
});
