(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("dashboard-data").textContent);
  DATA.frames = JSON.parse(document.getElementById("dashboard-frames").textContent);
  var CONFIG = {responsive: true, displaylogo: false};
  document.querySelectorAll("script.fig").forEach(function (node) {
    var fig = JSON.parse(node.textContent);
    Plotly.newPlot(node.getAttribute("data-target"), fig.data, fig.layout, CONFIG);
  });

  // Ranking table: sort on a header click (numbers as numbers, empty cells last).
  var table = document.getElementById("leaderboard");
  var body = table.tBodies[0];
  table.querySelectorAll("th.sortable").forEach(function (th, _) {
    th.addEventListener("click", function () {
      var column = Array.prototype.indexOf.call(th.parentNode.children, th);
      var ascending = !th.classList.contains("sorted-asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
      th.classList.add(ascending ? "sorted-asc" : "sorted-desc");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column].getAttribute("data-value"), y = b.cells[column].getAttribute("data-value");
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var nx = Number(x), ny = Number(y), cmp;
        if (!isNaN(nx) && !isNaN(ny)) { cmp = nx - ny; } else { cmp = x.localeCompare(y, undefined, {numeric: true}); }
        return ascending ? cmp : -cmp;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });

  document.getElementById("all-params").addEventListener("change", function (event) {
    table.classList.toggle("all-params", event.target.checked);
  });

  // Learning curves of the trials ticked in the table.
  var boxes = Array.prototype.slice.call(document.querySelectorAll("input.compare"));
  function drawCurves() {
    var chosen = boxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
    var traces = [];
    chosen.forEach(function (name) { traces = traces.concat(DATA.curves[name] || []); });
    document.getElementById("compare-list").textContent = chosen.length ?
      "Showing " + chosen.length + " trial(s): " + chosen.join(", ") + "." : "Tick trials in the ranking to draw them.";
    Plotly.react("fig-curves", traces, DATA.curves_layout, CONFIG);
  }
  function resetCompare() {
    boxes.forEach(function (b) { b.checked = DATA.default_compare.indexOf(b.value) >= 0; });
    drawCurves();
  }
  boxes.forEach(function (b) { b.addEventListener("change", drawCurves); });
  document.getElementById("compare-reset").addEventListener("click", resetCompare);
  resetCompare();

  // Timeline: one trial's grids across its evaluations.
  var select = document.getElementById("timeline-trial");
  var slider = document.getElementById("timeline-slider");
  var image = document.getElementById("timeline-image");
  var caption = document.getElementById("timeline-caption");
  DATA.order.forEach(function (name) {
    var option = document.createElement("option");
    option.value = name;
    option.textContent = DATA.labels[name];
    select.appendChild(option);
  });
  function showFrame() {
    var frames = DATA.frames[select.value];
    if (!frames || !frames.src.length) {
      image.removeAttribute("src");
      caption.textContent = "no grids for this trial yet";
      return;
    }
    var i = Number(slider.value);
    image.src = frames.src[i];
    var text = "iteration " + frames.it[i] + " (" + (i + 1) + " of " + frames.src.length + " shown";
    if (frames.total > frames.src.length) { text += ", " + frames.total + " evaluations"; }
    text += ")";
    if (frames.verdict[i]) { text += " - verdict: " + frames.verdict[i]; }
    caption.textContent = text;
  }
  function pickTrial(name) {
    select.value = name;
    var frames = DATA.frames[name];
    slider.max = frames && frames.src.length ? frames.src.length - 1 : 0;
    slider.value = slider.max;
    showFrame();
  }
  select.addEventListener("change", function () { pickTrial(select.value); });
  slider.addEventListener("input", showFrame);
  document.querySelectorAll("a.pick").forEach(function (link) {
    link.addEventListener("click", function () { pickTrial(link.closest("tr").getAttribute("data-trial")); });
  });
  if (DATA.order.length) { pickTrial(DATA.order[0]); }
  document.body.setAttribute("data-ready", "1");
})();
