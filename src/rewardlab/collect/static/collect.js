// Keyboard shortcuts for the annotator page. Pairwise: 1-7 press the seven verdict buttons
// (A much better ... B much better); every kind: S skips. In the reason box keys type text;
// there Enter leaves the box (pairwise, so 1-7 work again) or submits the form (other kinds);
// Shift+Enter is a new line. Without JavaScript every button still works by mouse or touch.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("task");
  if (!form) { return; }
  var pairwise = form.dataset.kind === "pairwise";
  var sent = false;
  form.addEventListener("submit", function (event) {
    if (sent) { event.preventDefault(); return; }  // one submission per page: a double press is not a second label
    sent = true;
  });
  var reason = document.getElementById("reason");
  reason.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || event.shiftKey) { return; }
    event.preventDefault();
    if (pairwise) { reason.blur(); }
    else { form.requestSubmit(document.getElementById("submit")); }
  });
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target && (target.tagName === "TEXTAREA" || target.tagName === "INPUT" || target.tagName === "SELECT");
    if (typing || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (event.key === "s" || event.key === "S") {
      event.preventDefault();
      form.requestSubmit(document.getElementById("skip"));
      return;
    }
    if (pairwise && /^[1-7]$/.test(event.key)) {
      var button = form.querySelector('button[data-key="' + event.key + '"]');
      if (button) { event.preventDefault(); form.requestSubmit(button); }
    }
  });
});
