/* The console's small behaviours, for every console page (no inline script anywhere):

   - <form data-confirm="question">: asks before submitting (revoking, disabling, cancelling).
   - <div data-poll="url">: polls a JSON envelope at `url` every second (the state of a
     background job); fills each descendant [data-field="name"] with data[name], sets a
     <progress data-field="progress"> from data.done / data.total, and stops when
     data.state is "done" or "failed" (then shows descendants [data-when="done"] or
     [data-when="failed"] and reloads if the element has data-reload). */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  var FINISHED = { done: true, failed: true };

  function show(box, data) {
    box.querySelectorAll("[data-field]").forEach(function (el) {
      var name = el.getAttribute("data-field");
      if (name === "progress" && el.tagName === "PROGRESS") {
        if (data.total) {
          el.max = data.total;
          el.value = data.done || 0;
        }
        return;
      }
      if (Object.prototype.hasOwnProperty.call(data, name) && data[name] !== null) {
        el.textContent = String(data[name]);
      }
    });
    box.querySelectorAll("[data-when]").forEach(function (el) {
      el.hidden = el.getAttribute("data-when") !== data.state;
    });
  }

  function poll(box) {
    var url = box.getAttribute("data-poll");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) {
          return { ok: response.ok, body: body };
        });
      })
      .then(function (answer) {
        if (!answer.ok) {
          box.setAttribute("data-error", answer.body.error || "error");
          show(box, { state: "failed", error: answer.body.error });
          return;
        }
        var data = answer.body.data || {};
        show(box, data);
        if (FINISHED[data.state]) {
          box.setAttribute("data-finished", data.state);
          if (box.hasAttribute("data-reload")) {
            window.location.reload();
          }
          return;
        }
        window.setTimeout(function () { poll(box); }, 1000);
      })
      .catch(function () {
        window.setTimeout(function () { poll(box); }, 2000);
      });
  }

  document.querySelectorAll("[data-poll]").forEach(poll);
})();
