/* My binding: what is bound, masked as the API answers it (GET /api/source for a student,
   GET /api/candidate for a candidate); changing the phone with a new code (PATCH); signing
   out (DELETE /api/token). Needs common.js and phone.js. */
(function () {
  "use strict";
  var B = window.Berater;
  var page = document.getElementById("binding");
  var signin = page.getAttribute("data-signin");
  var loading = document.getElementById("loading");
  var problem = document.getElementById("problem");
  var form = document.getElementById("change-phone");
  var legend = document.getElementById("change-phone-title");
  var done = document.getElementById("changed");
  var pc = B.phoneCode(form);
  var changing = null; // "student" or "candidate": whose phone the form changes

  var FIELDS = {
    student: ["name", "stuid", "admission_id", "department", "origin", "gender", "id_card", "phone"],
    candidate: ["name", "province", "city", "score", "subject", "phone"]
  };

  function show(kind, record) {
    var card = document.getElementById(kind);
    FIELDS[kind].forEach(function (name) {
      var cell = card.querySelector("[data-field=" + name + "]");
      var value = record[name];
      cell.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
    });
    card.hidden = false;
  }

  function fail(env) {
    loading.hidden = true;
    if (env.code === 401) {
      if (B.signInAgain(signin)) return;
    }
    problem.textContent = B.general(env);
    problem.hidden = false;
  }

  function load() {
    B.api("GET", "/api/token").then(function (env) {
      if (env.code !== 200) return fail(env);
      var who = env.data;
      var asks = [];
      if (who.student) asks.push(B.api("GET", "/api/source").then(function (r) {
        if (r.code === 200) show("student", r.data);
        return r;
      }));
      if (who.candidate) asks.push(B.api("GET", "/api/candidate").then(function (r) {
        if (r.code === 200) show("candidate", r.data);
        return r;
      }));
      return Promise.all(asks).then(function (answers) {
        var bad = answers.filter(function (r) { return r.code !== 200; })[0];
        if (bad) return fail(bad);
        loading.hidden = true;
        document.getElementById("unbound").hidden = asks.length > 0;
        document.getElementById("session").hidden = false;
      });
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-change]"), function (button) {
    button.addEventListener("click", function () {
      changing = button.getAttribute("data-change");
      legend.textContent = changing === "student" ? "修改学生绑定的手机号" : "修改考生登记的手机号";
      B.clearErrors(form);
      done.hidden = true;
      form.hidden = false;
      pc.phone.focus();
    });
  });

  document.getElementById("cancel-change").addEventListener("click", function () {
    form.hidden = true;
    changing = null;
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var submit = form.querySelector("button[type=submit]");
    if (!changing || submit.disabled) return;
    B.clearErrors(form);
    submit.disabled = true;
    var phone = B.mainlandMobile(pc.phone.value);
    pc.verify().then(function (ok) {
      return ok ? B.api("PATCH", "/api/" + changing, { phone: phone }) : null;
    }).then(function (env) {
      submit.disabled = false;
      if (!env) return;
      if (env.code === 200) {
        pc.forget();
        B.setToken(env.data.token);
        show(changing, env.data.record);
        form.hidden = true;
        form.reset();
        done.textContent = "手机号已改为 " + env.data.record.phone + "。";
        done.hidden = false;
        done.focus();
        return;
      }
      if (env.code === 400 && env.data && env.data.fields) {
        pc.forget("请重新获取新手机号的验证码。");
      } else if (env.code === 401) {
        if (!B.signInAgain(signin)) B.formStatus(form, B.general(env), true);
      } else {
        B.formStatus(form, B.general(env), true);
      }
    });
  });

  document.getElementById("signout").addEventListener("click", function () {
    var button = this;
    button.disabled = true;
    B.api("DELETE", "/api/token").then(function (env) {
      button.disabled = false;
      if (env.code !== 200 && env.code !== 401) {
        document.getElementById("signout-error").textContent = B.general(env);
        return;
      }
      B.setToken(null);
      ["student", "candidate", "unbound", "session", "change-phone", "changed"].forEach(
        function (id) { document.getElementById(id).hidden = true; });
      var out = document.getElementById("signed-out");
      out.hidden = false;
      out.focus();
    });
  });

  if (!B.token()) {
    if (!B.signInAgain(signin)) fail({ code: 401 });
    return;
  }
  load();
})();
