/* The demo partner app (development only): takes the token from the fragment and asks
   Berater who it belongs to, as a real partner app would; it can sign out. */
(function () {
  "use strict";
  var token = new URLSearchParams(location.hash.slice(1)).get("token");
  history.replaceState(null, "", location.pathname); // keep the token out of history
  var status = document.getElementById("status");
  var identity = document.getElementById("identity");
  var signout = document.getElementById("signout");
  var root = document.body.getAttribute("data-root") || "";

  function check() {
    if (!token) {
      status.textContent = "No token: sign in first.";
      return;
    }
    fetch(root + "/api/token", { headers: { Authorization: "Bearer " + token } })
      .then(function (res) { return res.json(); })
      .then(function (body) {
        status.textContent = body.code === 200 ? "Signed in" : "Refused: " + body.error;
        identity.textContent = JSON.stringify(body.data, null, 2);
        signout.hidden = body.code !== 200;
      });
  }

  signout.addEventListener("click", function () {
    fetch(root + "/api/token", { method: "DELETE", headers: { Authorization: "Bearer " + token } })
      .then(check);
  });
  check();
})();
