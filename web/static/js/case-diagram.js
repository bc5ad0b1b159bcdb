/* The case page's BPMN diagram: bpmn-js viewer, current steps highlighted, completed path marked. */
(function () {
  "use strict";
  var box = document.getElementById("diagram");
  if (!box || typeof window.BpmnJS !== "function") { return; }

  function fail() {
    box.classList.add("failed");
    box.textContent = box.getAttribute("data-error") || "";
  }

  fetch(box.getAttribute("data-src"), { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (resp) { if (!resp.ok) { throw new Error("HTTP " + resp.status); } return resp.json(); })
    .then(function (info) {
      var viewer = new window.BpmnJS({ container: box });
      return viewer.importXML(info.xml).then(function () {
        var canvas = viewer.get("canvas");
        var registry = viewer.get("elementRegistry");
        var done = {};
        var active = {};
        (info.completed || []).forEach(function (id) { done[id] = true; });
        (info.active || []).forEach(function (id) { active[id] = true; });
        registry.forEach(function (el) {
          var id = el.id;
          if (active[id]) {
            canvas.addMarker(id, "fq-active");
          } else if (done[id]) {
            canvas.addMarker(id, "fq-done");
          }
          var bo = el.businessObject;
          if (el.type === "bpmn:SequenceFlow" && bo && bo.sourceRef && bo.targetRef) {
            var from = bo.sourceRef.id;
            var to = bo.targetRef.id;
            if (done[from] && (done[to] || active[to])) {
              canvas.addMarker(id, "fq-done");
            }
          }
        });
        canvas.zoom("fit-viewport", "auto");
        window.addEventListener("resize", function () { canvas.zoom("fit-viewport", "auto"); });
      });
    })
    .catch(fail);
})();
