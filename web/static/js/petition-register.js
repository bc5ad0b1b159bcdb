/* Register petition: warn about possible repeats while the clerk types a name, ID or phone. */
(function () {
  "use strict";
  var form = document.getElementById("petition-form");
  var box = document.getElementById("repeat-warning");
  if (!form || !box) { return; }
  var url = form.getAttribute("data-repeat-url");
  var timer = null;
  var last = "";

  function value(id) {
    var el = document.getElementById(id);
    return el ? el.value.trim() : "";
  }

  function render(items) {
    box.textContent = "";
    if (!items.length) { box.hidden = true; return; }
    var title = document.createElement("strong");
    title.textContent = box.getAttribute("data-title");
    box.appendChild(title);
    var list = document.createElement("ul");
    items.slice(0, 5).forEach(function (item) {
      var li = document.createElement("li");
      var link = document.createElement("a");
      link.href = "/cases/" + item.id;
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = item.case_no;
      li.appendChild(link);
      var text = " " + item.subject + " · " + String(item.received_on).slice(0, 10);
      if (item.open) { text += " · " + box.getAttribute("data-open"); }
      if (item.repeat) { text += " · " + box.getAttribute("data-similar"); }
      li.appendChild(document.createTextNode(text));
      list.appendChild(li);
    });
    box.appendChild(list);
    box.hidden = false;
  }

  function check() {
    var rows = form.querySelectorAll("input[name$='_name']");
    var queries = [];
    Array.prototype.forEach.call(rows, function (input) {
      var i = input.name.slice(1, input.name.indexOf("_"));
      var name = input.value.trim();
      var id = value("p" + i + "_id_number");
      var phone = value("p" + i + "_phone");
      if (id.length >= 15 || (name && phone.length >= 7)) {
        queries.push({ name: name, id_number: id, phone: phone });
      }
    });
    var matter = value("subject") + " " + value("request");
    var key = JSON.stringify([queries, matter]);
    if (key === last) { return; }
    last = key;
    if (!queries.length) { render([]); return; }
    Promise.all(queries.map(function (q) {
      var params = new URLSearchParams();
      if (q.name) { params.set("name", q.name); }
      if (q.id_number) { params.set("id_number", q.id_number); }
      if (q.phone) { params.set("phone", q.phone); }
      params.set("matter", matter.trim());
      return fetch(url + "?" + params.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (resp) { return resp.ok ? resp.json() : { items: [] }; })
        .catch(function () { return { items: [] }; });
    })).then(function (results) {
      var seen = {};
      var items = [];
      results.forEach(function (r) {
        (r.items || []).forEach(function (item) {
          if (!seen[item.id]) { seen[item.id] = true; items.push(item); }
        });
      });
      render(items);
    });
  }

  form.addEventListener("submit", function () { window.clearTimeout(timer); });

  form.addEventListener("input", function (event) {
    if (!event.target.classList || !event.target.classList.contains("js-repeat")) { return; }
    window.clearTimeout(timer);
    timer = window.setTimeout(check, 350);
  });
})();
