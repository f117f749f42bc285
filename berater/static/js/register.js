/* Registration as a student (POST /api/student) or a candidate (POST /api/candidate), then on
   to the target with the fresh token in the fragment. The form's data-* attributes say which
   (data-kind), where to go on (data-next, checked by the server; data-home without one) and
   how to sign in again (data-landing). Needs common.js and phone.js. */
(function () {
  "use strict";
  var B = window.Berater;
  var form = document.getElementById("register");
  var kind = form.getAttribute("data-kind");
  var next = form.getAttribute("data-next") || form.getAttribute("data-home");
  var landing = form.getAttribute("data-landing");
  var maxScore = Number(form.getAttribute("data-max-score") || 0);
  var submit = form.querySelector("button[type=submit]");
  var submitLabel = submit.textContent;
  var already = document.getElementById("already");
  var problem = document.getElementById("problem");
  var pc = B.phoneCode(form);
  var field = function (name) { return form.elements.namedItem(name); };

  var ID_CARD = {
    length: "身份证号码应为 18 位。",
    string_too_short: "身份证号码应为 18 位。",
    string_too_long: "身份证号码应为 18 位。",
    format: "身份证号码是 17 位数字加最后一位数字或 X。",
    birth_date: "身份证号码里的出生日期不对，请核对。",
    check: "身份证号码的校验位不对，请逐位核对。"
  };
  var MESSAGES = {
    student: {
      id_card: function (type) { return ID_CARD[type] || "请输入正确的 18 位身份证号码。"; },
      id: "请输入学号或录取号（只含字母和数字）。"
    },
    candidate: {
      name: "请输入姓名（最多 32 个字）。",
      province: "请选择省份。",
      city: "请输入城市（最多 32 个字）。",
      score: "请输入 0 到 " + maxScore + " 之间的分数。",
      subject: "请选择科类。"
    }
  }[kind];
  var NO_MATCH = "身份证号码和学号（或录取号）对不上，或者不在录取名单中。请核对后再试。";

  function stop(message) {
    form.hidden = true;
    problem.textContent = message;
    problem.hidden = false;
  }

  function goOn(token) {
    location.replace(B.landingUrl(next, token));
  }

  function showAlready() {
    form.hidden = true;
    already.hidden = false;
    already.querySelector("a").setAttribute("href", B.landingUrl(next, B.token()));
  }

  /* The details of the form, or null with the blanks marked beside their fields. */
  function details() {
    var body = {}, first = null;
    function need(name, message, value) {
      if (value === null || value === "") {
        B.setError(field(name), message);
        first = first || field(name);
      } else {
        body[name] = value;
      }
    }
    need("phone", "请输入手机号码。", field("phone").value.trim());
    need("code", "请输入短信验证码。", field("code").value.trim());
    delete body.phone; // the API takes the phone verified by SMS, never from this body
    delete body.code;
    if (kind === "student") {
      need("id_card", "请输入身份证号码。", field("id_card").value.trim().toUpperCase());
      need("id", "请输入学号或录取号。", field("id").value.trim());
    } else {
      need("name", "请输入姓名。", field("name").value.trim());
      need("province", "请选择省份。", field("province").value);
      need("city", "请输入城市。", field("city").value.trim());
      var text = field("score").value.trim(), score = text === "" ? null : Number(text);
      if (score !== null && !(isFinite(score) && score >= 0 && score <= maxScore)) {
        B.setError(field("score"), MESSAGES.score);
        first = first || field("score");
      } else {
        need("score", "请输入分数。", score);
      }
      need("subject", "请选择科类。", field("subject").value);
    }
    if (first) first.focus();
    return first ? null : body;
  }

  function refused(env) {
    submit.disabled = false;
    if (env.code === 400 && B.showFieldErrors(form, env, MESSAGES)) return;
    if (env.code === 404 && kind === "student") {
      B.setError(field("id"), NO_MATCH);
      field("id_card").setAttribute("aria-invalid", "true");
      field("id").focus();
    } else if (env.code === 429) {
      var wait = env.data.retry_after;
      B.formStatus(form, "今天失败的次数太多了，请 " + B.wait(wait) + "后再试。", true);
      B.countdown(submit, wait, function (left) { return "请 " + B.wait(left) + "后再试"; },
        submitLabel);
    } else if (env.code === 403) {
      pc.forget("手机验证已过期，请重新获取验证码。");
    } else if (env.code === 409 && env.data && env.data.reason === "id_card_taken") {
      B.setError(field("id_card"), "这个身份证号码已经绑定了另一个微信账号。如有疑问，请联系招生办。");
      field("id_card").focus();
    } else if (env.code === 409) {
      showAlready();
    } else if (env.code === 401) {
      if (!B.signInAgain(landing)) B.formStatus(form, B.general(env), true);
    } else {
      B.formStatus(form, B.general(env), true);
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (submit.disabled) return;
    B.clearErrors(form);
    var body = details();
    if (!body) return;
    submit.disabled = true;
    B.formStatus(form, "正在提交…");
    pc.verify().then(function (ok) {
      if (!ok) {
        B.formStatus(form, "");
        submit.disabled = false;
        return null;
      }
      return B.api("POST", "/api/" + kind, body);
    }).then(function (env) {
      if (!env) return;
      if (env.code === 200) {
        pc.forget();
        B.setToken(env.data.token);
        B.formStatus(form, "绑定成功，正在跳转…");
        goOn(env.data.token);
        return;
      }
      B.formStatus(form, "");
      refused(env);
    });
  });

  /* Who is this? Without a token, sign in first; already bound, go on. */
  if (!B.token()) {
    if (!B.signInAgain(landing)) stop("请从公众号菜单重新进入。");
    return;
  }
  B.api("GET", "/api/token").then(function (env) {
    if (env.code === 401) {
      if (!B.signInAgain(landing)) stop("登录已过期，请从公众号菜单重新进入。");
    } else if (env.code !== 200) {
      B.formStatus(form, B.general(env), true);
    } else if (env.data.kind !== "wechat") {
      stop("请在微信里打开这个页面。");
    } else if (env.data[kind]) {
      showAlready();
    }
  });
})();
