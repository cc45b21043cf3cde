// Keyboard shortcuts of the review app. Everything works with the mouse too; this file only adds keys.
(function () {
  "use strict";

  function typing(target) {
    return target.closest && target.closest("input[type=text], input[type=date], textarea, select, [contenteditable]");
  }

  function go(id) {
    var link = document.getElementById(id);
    if (link) { window.location.href = link.href; }
  }

  function pick(name, number) {
    // The article's decision form and the settle screen's form take the same keys.
    var form = document.getElementById("decision") || document.getElementById("settle-form");
    var input = form && form.querySelector("input[name=" + name + "][data-key='" + number + "']");
    if (input) { input.checked = true; input.focus(); input.blur(); }
  }

  function submitOnce(button) {
    // A second key press while the page loads must not save the decision twice.
    if (!button || document.body.dataset.saving) { return; }
    document.body.dataset.saving = "1";
    button.click();
  }

  function toggleHelp() {
    var help = document.getElementById("help");
    if (help.open) { help.close(); } else { help.showModal(); }
  }

  var queueIndex = -1;
  function moveInQueue(step) {
    var rows = document.querySelectorAll("tr.queue-row");
    if (!rows.length) { return; }
    if (queueIndex >= 0) { rows[queueIndex].classList.remove("current"); }
    queueIndex = Math.max(0, Math.min(rows.length - 1, queueIndex + step));
    rows[queueIndex].classList.add("current");
    rows[queueIndex].querySelector("a").focus();
  }

  function onArticleKey(event) {
    var digit = /^Digit([1-9])$/.exec(event.code || "");
    if (digit && event.shiftKey) { pick("type", digit[1]); return true; }
    if (digit) { pick("sector", digit[1]); return true; }
    switch (event.key) {
      case "j": go("next-link"); return true;
      case "k": go("prev-link"); return true;
      case "y": submitOnce(document.getElementById("yes")); return true;
      case "n": submitOnce(document.getElementById("no")); return true;
      case "b": var box = document.getElementById("borderline"); if (box) { box.checked = !box.checked; } return true;
      case "e": var note = document.getElementById("note"); if (note) { note.focus(); } return true;
      case "h": go("history-link"); return true;
      case "s": var skip = document.getElementById("skip-article"); if (skip) { skip.requestSubmit(); } return true;
      case "c": nextKeySentence(); return true;
    }
    return false;
  }

  // -- the quote for the collection: c cycles through the key sentences, a click picks the sentence clicked --
  var keySentenceIndex = -1;

  function chooseQuote(sentence) {
    var field = document.getElementById("quote");
    var shown = document.getElementById("chosen-quote");
    if (!field || !shown || !sentence) { return; }
    field.value = sentence.replace(/\s+/g, " ").trim();
    shown.textContent = field.value;
    shown.classList.add("chosen");
  }

  function nextKeySentence() {
    var box = document.getElementById("quote-choice");
    var sentences = box ? JSON.parse(box.dataset.keySentences || "[]") : [];
    if (!sentences.length) { return; }
    keySentenceIndex = (keySentenceIndex + 1) % sentences.length;
    chooseQuote(sentences[keySentenceIndex]);
  }

  function sentenceAt(container, event) {
    // The sentence around the clicked character: from the end of the previous sentence to the end of this one.
    var caret = document.caretRangeFromPoint ? document.caretRangeFromPoint(event.clientX, event.clientY) : null;
    if (!caret || !container.contains(caret.startContainer)) { return ""; }
    var walker = document.createTreeWalker(container, NodeFilter.SHOW_TEXT);
    var offset = 0;
    while (walker.nextNode() && walker.currentNode !== caret.startContainer) { offset += walker.currentNode.length; }
    offset += caret.startOffset;
    var text = container.textContent;
    var start = offset;
    while (start > 0 && !/[.!?\n]/.test(text[start - 1])) { start -= 1; }
    var end = offset;
    while (end < text.length && !/[.!?\n]/.test(text[end])) { end += 1; }
    if (end < text.length && text[end] !== "\n") { end += 1; }
    return text.slice(start, end).trim();
  }

  function startQuoteChoice() {
    var container = document.getElementById("article-text");
    if (!container || !document.getElementById("quote")) { return; }
    container.addEventListener("click", function (event) {
      if (window.getSelection && String(window.getSelection()).length) { return; }  // selecting text, not choosing
      chooseQuote(sentenceAt(container, event));
    });
  }

  // -- the queue's own keys: select (x), skip for now / unpark (s), bulk no (n), search (/) --
  function currentRow() {
    var rows = document.querySelectorAll("tr.queue-row");
    return rows.length ? rows[Math.max(queueIndex, 0)] : null;
  }

  function countSelected() {
    var boxes = document.querySelectorAll("tr.queue-row input.select-row");
    var count = 0;
    boxes.forEach(function (box) {
      box.closest("tr").classList.toggle("selected", box.checked);
      if (box.checked) { count += 1; }
    });
    var shown = document.getElementById("selected-count");
    if (shown) { shown.textContent = String(count); }
    return count;
  }

  function toggleSelected() {
    var row = currentRow();
    if (!row) { return; }
    var box = row.querySelector("input.select-row");
    box.checked = !box.checked;
    countSelected();
  }

  function skipCurrent() {
    // The row's own skip (or unpark) button: the same form a mouse click sends. The cursor keeps its place.
    var row = currentRow();
    var button = row && row.querySelector("button.skip, button.unskip");
    if (!button || document.body.dataset.saving) { return; }
    sessionStorage.setItem("queueIndex", String(queueIndex));
    document.body.dataset.saving = "1";
    button.click();
  }

  function bulkNo() {
    if (countSelected() === 0) { return; }
    sessionStorage.setItem("queueIndex", String(queueIndex));
    submitOnce(document.getElementById("bulk-no"));
  }

  function undoForm() {
    // Just after a bulk no, u undoes the whole bulk; otherwise the last single decision.
    return document.getElementById("bulk-undo-form") || document.getElementById("undo-form");
  }

  function startQueue() {
    var saved = parseInt(sessionStorage.getItem("queueIndex") || "0", 10);
    sessionStorage.removeItem("queueIndex");
    var rows = document.querySelectorAll("tr.queue-row");
    if (!rows.length) { return; }
    queueIndex = -1;
    moveInQueue(1 + Math.min(Math.max(saved, 0), rows.length - 1));
    document.querySelectorAll("input.select-row").forEach(function (box) {
      box.addEventListener("change", countSelected);
    });
    countSelected();
  }

  function onQueueKey(event) {
    switch (event.key) {
      case "j": moveInQueue(1); return true;
      case "k": moveInQueue(-1); return true;
      case "x": toggleSelected(); return true;
      case "s": skipCurrent(); return true;
      case "n": bulkNo(); return true;
      case "/": var search = document.getElementById("search"); if (search) { search.focus(); } return true;
      case "Enter":
        var rows = document.querySelectorAll("tr.queue-row");
        if (rows.length) { window.location.href = rows[Math.max(queueIndex, 0)].dataset.href; }
        return true;
    }
    return false;
  }

  function onKey(event) {
    if (event.ctrlKey && event.key === "Enter" && event.target.id === "note") {
      event.preventDefault();
      submitOnce(document.getElementById("yes"));
      return;
    }
    if (typing(event.target)) {
      if (event.key === "Escape") { event.target.blur(); }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var page = document.body.dataset.page;
    var handled = false;
    if (event.key === "?") { toggleHelp(); handled = true; }
    else if (event.key === "q") {
      var queue = document.getElementById("queue-link");
      window.location.href = queue ? queue.href : "/";
      handled = true;
    }
    else if (event.key === "u") { undoForm().requestSubmit(); handled = true; }
    else if (page === "article" || page === "settle") { handled = onArticleKey(event); }
    else if (page === "queue") { handled = onQueueKey(event); }
    else if (page === "history" && event.key === "h") { go("back-link"); handled = true; }
    if (handled) { event.preventDefault(); }
  }

  document.addEventListener("keydown", onKey);
  document.addEventListener("DOMContentLoaded", function () {
    var open = document.getElementById("help-open");
    if (open) { open.addEventListener("click", toggleHelp); }
    if (document.body.dataset.page === "queue") { startQueue(); }
    if (document.body.dataset.page === "article") { startQuoteChoice(); }
  });
})();
