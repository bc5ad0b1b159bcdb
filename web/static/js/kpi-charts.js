/* KPI dashboard charts (Chart.js): monthly trend lines and the per-village comparison bars. */
(function () {
  "use strict";
  if (typeof window.Chart !== "function") { return; }
  var palette = ["#b4232a", "#0b57d0", "#1e8e3e", "#b7791f", "#7b1fa2", "#00838f", "#5d4037", "#546e7a"];
  var font = '"PingFang SC","Hiragino Sans GB","Microsoft YaHei","Noto Sans CJK SC","Source Han Sans SC","WenQuanYi Micro Hei",system-ui,sans-serif';
  window.Chart.defaults.font.family = font;

  function draw(canvas) {
    var spec = JSON.parse(canvas.getAttribute("data-chart") || "{}");
    var kind = canvas.getAttribute("data-kind") || "line";
    var datasets = (spec.series || []).map(function (s, i) {
      var color = palette[i % palette.length];
      return { label: s.label, data: s.data, borderColor: color, backgroundColor: color, spanGaps: true, tension: 0.2 };
    });
    return new window.Chart(canvas, {
      type: kind,
      data: { labels: spec.labels || [], datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: { y: { min: 0, max: 100, title: { display: true, text: canvas.getAttribute("data-axis") || "" } } },
        plugins: { legend: { position: "bottom" } }
      }
    });
  }

  ["trend-chart", "compare-chart"].forEach(function (id) {
    var canvas = document.getElementById(id);
    if (canvas) { draw(canvas); }
  });
})();
