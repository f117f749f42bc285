/* Shared by the pages students and candidates use: the token, calls to the JSON API, errors
   beside their fields, the send-code countdown.

   The token arrives the way partner apps get it, in the fragment (#token=...). It is moved
   into sessionStorage (this tab only; memory when storage is refused) and the fragment is
   removed from the address bar and history. It never goes into a query string. */
(function () {
  "use strict";

  var KEY = "berater.token";
  var RESTARTED = "berater.signin-restarted";
  var root = document.body.getAttribute("data-root") || "";
  var memory = null;

  function store(value) {
    memory = value;
    try {
      if (value) sessionStorage.setItem(KEY, value);
      else sessionStorage.removeItem(KEY);
    } catch (e) { /* storage refused: the token lives in memory for this page */ }
  }

  function stored() {
    try { return sessionStorage.getItem(KEY) || memory; } catch (e) { return memory; }
  }

  /* The token of this tab: a fresh one from the fragment wins, and the fragment goes. */
  function takeToken() {
    var hash = location.hash.replace(/^#/, "");
    if (hash) {
      var fresh = new URLSearchParams(hash).get("token");
      if (fresh) {
        store(fresh);
        history.replaceState(null, "", location.pathname + location.search);
      }
    }
    return stored();
  }

  var token = takeToken();

  function setToken(value) { token = value; store(value); }

  /* Sign in again through the landing (a path of this service). At most once in 30 s, so
     a sign-in that cannot succeed shows a message instead of looping. */
  function signInAgain(landing) {
    var now = Date.now(), last = 0;
    try { last = Number(sessionStorage.getItem(RESTARTED) || 0); } catch (e) { last = 0; }
    if (now - last < 30000) return false;
    try { sessionStorage.setItem(RESTARTED, String(now)); } catch (e) { return false; }
    setToken(null);
    location.replace(landing);
    return true;
  }

  /* One call to the JSON API with the token: always resolves to the envelope
     {code, error, data}; code 0 when the network failed. A 429 carries data.retry_after. */
  function api(method, path, body) {
    var init = { method: method, headers: { Accept: "application/json" }, credentials: "omit" };
    if (token) init.headers.Authorization = "Bearer " + token;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(root + path, init).then(function (res) {
      return res.json().catch(function () {
        return { code: res.status, error: "", data: null };
      }).then(function (env) {
        if (!env || typeof env.code !== "number") env = { code: res.status, error: "", data: null };
        if (env.code === 429) {
          var data = env.data || {};
          if (!data.retry_after) data.retry_after = Number(res.headers.get("Retry-After")) || 60;
          env.data = data;
        }
        return env;
      });
    }, function () {
      return { code: 0, error: "network", data: null };
    });
  }

  /* "59 秒", "3 分钟", "5 小时 2 分钟" */
  function wait(seconds) {
    seconds = Math.max(1, Math.ceil(seconds));
    if (seconds < 60) return seconds + " 秒";
    if (seconds < 3600) return Math.ceil(seconds / 60) + " 分钟";
    var hours = Math.floor(seconds / 3600), minutes = Math.ceil((seconds % 3600) / 60);
    if (minutes === 60) { hours += 1; minutes = 0; }
    return hours + " 小时" + (minutes ? " " + minutes + " 分钟" : "");
  }

  /* What a failure that is no field's own means for a person. */
  function general(env) {
    if (env.code === 0) return "网络连接失败，请检查网络后再试。";
    if (env.code === 401) return "登录已过期，请重新进入。";
    if (env.code === 429) return "操作太频繁，请 " + wait(env.data.retry_after) + "后再试。";
    if (env.code === 502 || env.code === 503) return "服务暂时不可用，请稍后再试。";
    if (env.code >= 500) return "服务出错了，请稍后再试。";
    return "操作没有成功，请检查后再试。";
  }

  /* Errors beside their fields. A form's fields are found by name; each input names its
     error element through aria-describedby (the first id there). */
  function errorElement(input) {
    var ids = (input.getAttribute("aria-describedby") || "").split(/\s+/);
    return ids[0] ? document.getElementById(ids[0]) : null;
  }

  function setError(input, message) {
    var box = errorElement(input);
    if (box) box.textContent = message || "";
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  /* A field's error goes once the person edits that field. */
  function clearOnEdit(form) {
    function clear(event) {
      if (event.target.name && event.target.getAttribute("aria-invalid")) setError(event.target, "");
    }
    form.addEventListener("input", clear);
    form.addEventListener("change", clear);
  }

  function clearErrors(form) {
    Array.prototype.forEach.call(form.elements, function (input) {
      if (input.name) setError(input, "");
    });
    var status = form.querySelector(".form-status");
    if (status) { status.textContent = ""; status.classList.remove("error"); }
  }

  function formStatus(form, message, isError) {
    var status = form.querySelector(".form-status");
    if (!status) return;
    status.textContent = message || "";
    status.classList.toggle("error", Boolean(isError));
  }

  /* The API's field-level errors (a 400's data.fields) beside their fields, in Chinese:
     `messages[field]` is a string or a function of the error's type. Returns true when at
     least one was placed; focuses the first. */
  function showFieldErrors(form, env, messages) {
    var fields = (env.data && env.data.fields) || [];
    var first = null;
    fields.forEach(function (f) {
      var name = String(f.field || "").split(".")[0];
      var input = form.elements.namedItem(name);
      if (!input || !messages[name]) return;
      var text = typeof messages[name] === "function" ? messages[name](f.type) : messages[name];
      setError(input, text);
      if (!first) first = input;
    });
    if (first) first.focus();
    return Boolean(first);
  }

  /* The send-code button: disabled while it counts down, saying when a resend is possible. */
  function countdown(button, seconds, label, done) {
    var end = Date.now() + seconds * 1000;
    button.disabled = true;
    function tick() {
      var left = Math.ceil((end - Date.now()) / 1000);
      if (left <= 0) {
        button.disabled = false;
        button.textContent = done;
        return;
      }
      button.textContent = label(left);
      setTimeout(tick, Math.min(1000, (end - Date.now()) % 1000 || 1000));
    }
    tick();
  }

  function mainlandMobile(text) {
    var value = String(text || "").replace(/[\s-]/g, "").replace(/^(\+86|0086|86)(?=\d{11}$)/, "");
    return /^1[3-9]\d{9}$/.test(value) ? value : null;
  }

  window.Berater = {
    root: root,
    token: function () { return token; },
    setToken: setToken,
    signInAgain: signInAgain,
    api: api,
    wait: wait,
    general: general,
    setError: setError,
    clearErrors: clearErrors,
    clearOnEdit: clearOnEdit,
    formStatus: formStatus,
    showFieldErrors: showFieldErrors,
    countdown: countdown,
    mainlandMobile: mainlandMobile,
    landingUrl: function (target, token) { return target.split("#")[0] + "#token=" + token; }
  };
})();
