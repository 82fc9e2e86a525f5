// Drag and drop for the pipeline's kanban board (P3.2). No library: HTML5 drag events.
// A card carries its own move form (a stage select and a Move button, sent by htmx,
// or as a plain form without JavaScript); dropping a card on a column puts that
// column's stage into the form and submits it, so a drop and a click go through the
// same endpoint, CSRF token and 422 "fill these fields first" answer. Loaded again
// on every boosted visit of a pipeline page, so it installs its listeners only once.
(function () {
  "use strict";
  if (window.salesKanbanReady) {
    return;
  }
  window.salesKanbanReady = true;

  var dragged = null;

  function columnOf(element) {
    return element && element.closest ? element.closest(".pipeline-column[data-stage]") : null;
  }

  function clearTargets() {
    document.querySelectorAll(".pipeline-drop-target").forEach(function (column) {
      column.classList.remove("pipeline-drop-target");
    });
  }

  document.addEventListener("dragstart", function (event) {
    var card = event.target && event.target.closest ? event.target.closest(".pipeline-card[draggable=true]") : null;
    if (!card) {
      return;
    }
    dragged = card;
    card.classList.add("pipeline-dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.dataset.card || "");
  });

  document.addEventListener("dragend", function () {
    if (dragged) {
      dragged.classList.remove("pipeline-dragging");
    }
    dragged = null;
    clearTargets();
  });

  document.addEventListener("dragover", function (event) {
    var column = columnOf(event.target);
    if (!dragged || !column) {
      return;
    }
    event.preventDefault(); // allows the drop
    event.dataTransfer.dropEffect = "move";
    // Near the board's left or right edge, scroll it so far columns can be reached.
    var board = column.closest(".pipeline-board");
    if (board) {
      var box = board.getBoundingClientRect();
      if (event.clientX > box.right - 48) {
        board.scrollLeft += 24;
      } else if (event.clientX < box.left + 48) {
        board.scrollLeft -= 24;
      }
    }
    if (!column.classList.contains("pipeline-drop-target")) {
      clearTargets();
      column.classList.add("pipeline-drop-target");
    }
  });

  document.addEventListener("dragleave", function (event) {
    var column = columnOf(event.target);
    if (column && !column.contains(event.relatedTarget)) {
      column.classList.remove("pipeline-drop-target");
    }
  });

  document.addEventListener("drop", function (event) {
    var column = columnOf(event.target);
    var card = dragged;
    if (!card || !column) {
      return;
    }
    event.preventDefault();
    clearTargets();
    card.classList.remove("pipeline-dragging");
    dragged = null;
    var stage = column.dataset.stage;
    if (!stage || stage === card.dataset.stage) {
      return; // dropped where it was
    }
    var form = card.querySelector("form[data-move-form]");
    var select = form ? form.querySelector("select[name=stage]") : null;
    if (!form || !select) {
      return;
    }
    select.value = stage;
    if (select.value !== stage) {
      return; // a column the form does not offer
    }
    // Shown in its new column at once; the board swapped in by the answer is the truth.
    column.querySelector(".pipeline-cards").appendChild(card);
    if (window.htmx) {
      window.htmx.trigger(form, "submit");
    } else {
      form.requestSubmit();
    }
  });

  // After a move, the panel asking for missing fields (or the moved card) takes the
  // focus, so keyboard and screen reader users land where the answer is.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    var board = document.getElementById("pipeline-board");
    if (!board || (target && target !== board && !board.contains(target) && target.id !== "pipeline-board")) {
      return;
    }
    var focus = board.querySelector("[data-focus]");
    if (!focus) {
      return;
    }
    var field = focus.matches("input, select, textarea") ? focus : focus.querySelector("input, select, textarea, a");
    (field || focus).focus({ preventScroll: true });
    focus.scrollIntoView({ block: "nearest" });
  });
})();
