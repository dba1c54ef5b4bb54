// The conversion dashboard: sortable breakdown tables, and a typed date selects the custom
// range. The page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const range = document.getElementById("id_range");
  for (const id of ["id_start", "id_end"]) {
    document.getElementById(id)?.addEventListener("input", () => {
      if (range) range.value = "custom";
    });
  }
  for (const table of document.querySelectorAll("table.fa-sortable")) {
    const headers = [...table.tHead.rows[0].cells];
    headers.forEach((header, column) => {
      header.querySelector("button").addEventListener("click", () => {
        const ascending = header.getAttribute("aria-sort") !== "ascending";
        headers.forEach((other) => other.removeAttribute("aria-sort"));
        header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        const numeric = header.dataset.type === "number";
        const value = (row) => row.cells[column].dataset.value ?? "";
        const rows = [...table.tBodies[0].rows].filter((row) => row.cells.length > 1);
        rows.sort((a, b) => {
          const [x, y] = [value(a), value(b)];
          const order = numeric
            ? (x === "" ? -Infinity : Number(x)) - (y === "" ? -Infinity : Number(y))
            : x.localeCompare(y);
          return ascending ? order : -order;
        });
        table.tBodies[0].append(...rows);
      });
    });
  }
});
