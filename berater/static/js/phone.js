/* A phone and its SMS code, inside a form: "send code" (POST /api/code) counts down until a
   resend is possible, and verify() checks the code (POST /api/code/verify) before the form's
   own request. A phone verified once stays verified for the next try of the same form (the
   API keeps it for 30 minutes), so a binding refused for another field does not need a new
   code. Needs common.js. */
(function () {
  "use strict";
  var B = window.Berater;
  var PHONE = "请输入 11 位中国大陆手机号码。";

  B.phoneCode = function (form) {
    var phone = form.elements.namedItem("phone");
    var code = form.elements.namedItem("code");
    var send = form.querySelector("[data-send-code]");
    var note = form.querySelector("[data-code-sent]");
    var sentTo = null; // the phone the last code went to
    var verified = null; // the phone the API holds as verified for this person
    B.clearOnEdit(form);

    function cooling(seconds) {
      B.countdown(send, seconds, function (left) {
        return left <= 60 ? left + " 秒后可重发" : B.wait(left) + "后可重发";
      }, "重新发送");
    }

    send.addEventListener("click", function () {
      B.setError(phone, "");
      var value = B.mainlandMobile(phone.value);
      if (!value) {
        B.setError(phone, PHONE);
        phone.focus();
        return;
      }
      send.disabled = true;
      B.api("POST", "/api/code", { phone: value }).then(function (env) {
        if (env.code === 200) {
          sentTo = value;
          verified = null;
          if (note) {
            note.textContent = "验证码已发送至 " + env.data.phone + "，" +
              Math.round(env.data.expires_in / 60) + " 分钟内有效。";
          }
          cooling(env.data.resend_after || 60);
          code.focus();
          return;
        }
        send.disabled = false;
        if (env.code === 429) {
          B.setError(phone, "发送太频繁，请 " + B.wait(env.data.retry_after) + "后再试。");
          cooling(env.data.retry_after);
        } else if (env.code === 400 && B.showFieldErrors(form, env, { phone: PHONE })) {
          return;
        } else if (env.code === 400) {
          B.setError(phone, "短信服务拒绝了这个号码，请换一个手机号。");
        } else {
          B.setError(phone, B.general(env));
        }
        phone.focus();
      });
    });

    // Enter in the phone field asks for the code (the next step), not the whole form.
    phone.addEventListener("keydown", function (event) {
      if (event.key !== "Enter") return;
      event.preventDefault();
      if (!send.disabled) send.click();
    });

    /* Resolves true when the phone in the form is verified, else shows why beside its field. */
    function verify() {
      var value = B.mainlandMobile(phone.value);
      if (!value) {
        B.setError(phone, PHONE);
        phone.focus();
        return Promise.resolve(false);
      }
      if (verified === value) return Promise.resolve(true);
      if (sentTo !== value) {
        B.setError(code, sentTo ? "手机号改过了，请重新获取验证码。" : "请先点“获取验证码”。");
        send.focus();
        return Promise.resolve(false);
      }
      var typed = code.value.trim();
      if (!/^[0-9]{6}$/.test(typed)) {
        B.setError(code, "请输入短信里的 6 位数字验证码。");
        code.focus();
        return Promise.resolve(false);
      }
      return B.api("POST", "/api/code/verify", { code: typed }).then(function (env) {
        if (env.code === 200) {
          verified = value;
          return true;
        }
        var left = env.data && typeof env.data.tries_left === "number" ? env.data.tries_left : null;
        if (env.code === 400 && left !== null) {
          if (left > 0) {
            B.setError(code, "验证码不对，还可以再试 " + left + " 次。");
          } else {
            sentTo = null;
            B.setError(code, "验证码错误次数太多，已经失效，请重新获取。");
          }
        } else if (env.code === 400 && env.data && env.data.fields) {
          B.setError(code, "请输入短信里的 6 位数字验证码。");
        } else if (env.code === 400) {
          sentTo = null;
          B.setError(code, "验证码已失效或已经用过，请重新获取。");
        } else {
          B.setError(code, B.general(env));
        }
        code.focus();
        return false;
      });
    }

    return {
      verify: verify,
      /* The API used up the verification (a binding succeeded) or it expired. */
      forget: function (message) {
        verified = null;
        sentTo = null;
        if (message) {
          B.setError(code, message);
          code.focus();
        }
      },
      phone: phone,
      code: code
    };
  };
})();
