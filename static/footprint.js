// The calculator's airport suggestions: asks /footprint/airports as the visitor types.
// Loaded from a file, never inline: the Content-Security-Policy allows scripts from this site only.
(function () {
  var list = document.getElementById("airport-list");
  if (!list || !window.fetch) { return; }
  var timer = null;
  var asked = "";
  function ask(q) {
    asked = q;
    fetch(list.getAttribute("data-url") + "?q=" + encodeURIComponent(q))
      .then(function (r) { return r.ok ? r.json() : {results: []}; })
      .then(function (data) {
        if (q !== asked) { return; }
        while (list.firstChild) { list.removeChild(list.firstChild); }
        data.results.forEach(function (a) {
          var option = document.createElement("option");
          option.value = a.label;
          list.appendChild(option);
        });
      })
      .catch(function () {});
  }
  document.querySelectorAll("input[data-airport]").forEach(function (input) {
    input.addEventListener("input", function () {
      var q = input.value.trim();
      if (q.length < 2 || /\([A-Z]{3}\)$/.test(q)) { return; }
      clearTimeout(timer);
      timer = setTimeout(function () { ask(q); }, 120);
    });
  });
})();
