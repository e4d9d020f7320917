/* On paper an animation cannot play: print a strip of its key frames instead of its player.
 *
 * The player of cnnbook.animation (ConvolutionAnimation.to_html) keeps its PNG frames in
 * its own <script>, as `var frames = [...]`. For each player on the page this builds, inside
 * the player, a grid of up to four frames, each labelled with its step: the first two steps
 * (where the kernel starts and how far it moves), the middle one and the last (the output
 * complete). Only print media shows the strip, and hides the player's image and controls
 * (_static/book.css, @media print); on screen nothing changes. */
(function () {
  "use strict";

  function keyFrames(count) {
    var picks = [0, 1, Math.floor((count - 1) / 2), count - 1];
    return picks.filter(function (step, i) {
      return step >= 0 && step < count && picks.indexOf(step) === i;
    });
  }

  function addStrip(player) {
    var script = player.querySelector("script");
    var match = script && script.textContent.match(/var frames = (\[[^\]]*\]);/);
    var image = player.querySelector("img");
    if (!match || !image || player.querySelector(".cnnbook-animation-strip")) return;
    var frames = JSON.parse(match[1]);
    var strip = document.createElement("div");
    strip.className = "cnnbook-animation-strip";
    keyFrames(frames.length).forEach(function (step) {
      var label = "step " + (step + 1) + " of " + frames.length;
      var cell = document.createElement("div");
      var frame = document.createElement("img");
      frame.src = frames[step];
      frame.alt = image.alt + " (" + label + ")";
      frame.setAttribute("width", image.getAttribute("width"));
      frame.setAttribute("height", image.getAttribute("height"));
      var caption = document.createElement("div");
      caption.className = "cnnbook-animation-step";
      caption.textContent = label.charAt(0).toUpperCase() + label.slice(1);
      cell.appendChild(frame);
      cell.appendChild(caption);
      strip.appendChild(cell);
    });
    player.appendChild(strip);
  }

  function addStrips() {
    document.querySelectorAll(".cnnbook-animation").forEach(addStrip);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", addStrips);
  } else {
    addStrips();
  }
})();
