// Keyboard shortcuts for the review console. No libraries, no network.
(function () {
  "use strict";
  var form = document.getElementById("decide-form");

  function setAll(action) {
    if (!form) return false;
    var radios = form.querySelectorAll('input[type="radio"][value="' + action + '"]');
    radios.forEach(function (radio) { radio.checked = true; });
    return radios.length > 0;
  }

  function submitDecision(action) {
    if (setAll(action)) {
      if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
    }
  }

  // "+ label the model missed": adds a confirm/reject radio row for that label.
  var adder = document.getElementById("add-label");
  if (adder) {
    adder.addEventListener("change", function () {
      var label = adder.value;
      if (!label) return;
      var holder = document.getElementById("added-labels");
      var span = document.createElement("span");
      span.className = "added";
      ["confirm", "reject"].forEach(function (action) {
        var input = document.createElement("input");
        input.type = "radio"; input.name = "decision_" + label; input.value = action;
        input.checked = action === "confirm";
        var wrap = document.createElement("label");
        wrap.appendChild(input);
        wrap.appendChild(document.createTextNode(" " + label + " " + action + " "));
        span.appendChild(wrap);
      });
      holder.appendChild(span);
      adder.querySelector('option[value="' + label + '"]').remove();
      adder.value = "";
    });
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT");
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && form) {
      event.preventDefault();
      if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
      return;
    }
    if (typing || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "c") { event.preventDefault(); submitDecision("confirm"); }
    else if (event.key === "r") { event.preventDefault(); submitDecision("reject"); }
    else if (event.key === "e") { event.preventDefault(); submitDecision("escalate"); }
    else if (event.key === "n") {
      var next = document.getElementById("claim-next");
      if (next) { event.preventDefault(); next.submit(); }
    }
  });
})();
