/* The Q&A page: ask (GET /api/qna), see the answers with their sources without a reload; a
   blank question or one over the limit is caught before sending; no answer shows the closest
   sections, each a button that asks about it. `?q=` (the link under a cut reply in the chat)
   is asked at once. Needs common.js. */
(function () {
  "use strict";
  var B = window.Berater;
  var form = document.getElementById("ask");
  var q = form.elements.namedItem("q");
  var max = Number(form.getAttribute("data-max") || 200);
  var landing = form.getAttribute("data-landing");
  var counter = document.getElementById("q-count");
  var results = document.getElementById("results");
  var submit = form.querySelector("button[type=submit]");
  var PENDING = "berater.qna-question"; // a question kept in the tab while signing in

  function length(text) { return Array.from(text).length; } // characters, as the API counts

  function count() {
    var n = length(q.value.trim());
    counter.textContent = n + "/" + max;
    counter.classList.toggle("over", n > max);
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function source(answer) {
    var parts = [answer.chapter, answer.section].filter(Boolean);
    if (answer.page !== null && answer.page !== undefined) parts.push("第 " + answer.page + " 页");
    return "出处：" + (parts.length ? parts.join(" · ") : answer.source);
  }

  function render(data) {
    results.textContent = "";
    results.appendChild(element("h2", "", "“" + data.question + "”"));
    if (data.answered) {
      data.answers.forEach(function (answer) {
        var box = element("article", "answer");
        if (answer.title) box.appendChild(element("h3", "", answer.title));
        box.appendChild(element("p", "", answer.text));
        box.appendChild(element("p", "source", source(answer)));
        results.appendChild(box);
      });
      return;
    }
    results.appendChild(element("p", "notice", "学生手册里没有找到确切的答案。"));
    if (!data.suggestions.length) {
      results.appendChild(element("p", "muted", "换个说法试试？"));
      return;
    }
    results.appendChild(element("p", "", "可以看看这些章节："));
    var list = element("ul", "suggestions");
    data.suggestions.forEach(function (name) {
      var item = element("li");
      var button = element("button", "secondary", name);
      button.type = "button";
      button.addEventListener("click", function () {
        q.value = name;
        count();
        ask();
      });
      item.appendChild(button);
      list.appendChild(item);
    });
    results.appendChild(list);
  }

  function problem(text) {
    results.textContent = "";
    results.appendChild(element("p", "notice", text));
  }

  function ask() {
    B.clearErrors(form);
    var text = q.value.trim();
    if (!text) {
      B.setError(q, "请输入问题。");
      q.focus();
      return;
    }
    if (length(text) > max) {
      B.setError(q, "问题最多 " + max + " 个字，现在是 " + length(text) + " 个字。");
      q.focus();
      return;
    }
    submit.disabled = true;
    B.formStatus(form, "正在查找…");
    B.api("GET", "/api/qna?" + new URLSearchParams({ q: text, k: "3" }).toString()).then(
      function (env) {
        submit.disabled = false;
        B.formStatus(form, "");
        if (env.code === 200) {
          render(env.data);
          results.focus();
        } else if (env.code === 400 && env.data && env.data.fields) {
          B.setError(q, "请输入 1 到 " + max + " 个字的问题。");
          q.focus();
        } else if (env.code === 401) {
          try { sessionStorage.setItem(PENDING, text); } catch (e) { /* asked again by hand */ }
          if (!B.signInAgain(landing)) problem(B.general(env));
        } else if (env.code === 403) {
          problem("问答机器人只对绑定了学生身份的新生开放。");
          document.getElementById("register-link").hidden = false;
        } else if (env.code === 503) {
          problem("问答机器人暂时不可用，请稍后再试。");
        } else {
          problem(B.general(env));
        }
      });
  }

  q.addEventListener("input", count);
  B.clearOnEdit(form);
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    ask();
  });

  var asked = new URLSearchParams(location.search).get("q");
  if (!B.token()) {
    // Keep the question in this tab while signing in; the landing comes back to /qna.
    try { if (asked) sessionStorage.setItem(PENDING, asked); } catch (e) { /* lost, then */ }
    if (!B.signInAgain(landing)) problem("请从公众号菜单重新进入。");
    return;
  }
  try {
    asked = asked || sessionStorage.getItem(PENDING);
    sessionStorage.removeItem(PENDING);
  } catch (e) { /* no storage: only the address's question */ }
  if (asked) {
    q.value = asked;
    count();
    ask();
  } else {
    count();
  }
})();
