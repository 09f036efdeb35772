// Glue between Streamlit's component messages and crystal-toolkit's CrystalToolkitScene.
//
// Streamlit (components v1) talks to this iframe with window.postMessage:
//   iframe -> app: {isStreamlitMessage: true, type: "streamlit:componentReady", apiVersion: 1}
//   app -> iframe: {type: "streamlit:render", args: {scene, legend, camera, renderer, height}, ...}   (on every rerun)
//   iframe -> app: {isStreamlitMessage: true, type: "streamlit:setFrameHeight", height}
// The viewer scripts are loaded once, when the iframe loads; each rerun only sends a new scene.
(function () {
  "use strict";

  var sceneRoot = document.getElementById("scene-root");
  var errorBox = document.getElementById("viewer-error");
  var legendBox = document.getElementById("viewer-legend");
  var reactRoot = null;
  var renderCount = 0;
  var lastSceneText = null;

  function sendToStreamlit(type, data) {
    var message = Object.assign({ isStreamlitMessage: true, type: type }, data || {});
    window.parent.postMessage(message, "*");
  }

  function showError(text) {
    errorBox.textContent = text;
    sceneRoot.setAttribute("data-error", text);
    sendToStreamlit("streamlit:setFrameHeight", { height: 80 });
  }

  function renderLegend(legend) {
    // Built with textContent: labels are never parsed as HTML.
    legendBox.textContent = "";
    (legend || []).forEach(function (entry) {
      var item = document.createElement("span");
      item.className = "legend-item";
      var swatch = document.createElement("span");
      swatch.className = "legend-swatch";
      swatch.style.backgroundColor = /^#[0-9a-fA-F]{3,8}$/.test(entry.color) ? entry.color : "#cccccc";
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(String(entry.label)));
      legendBox.appendChild(item);
    });
  }

  function renderScene(args) {
    var library = window.dash_mp_components;
    if (!window.React || !window.ReactDOM || !library || !library.CrystalToolkitScene) {
      showError("The structure viewer scripts did not load (React, ReactDOM or dash_mp_components missing).");
      return;
    }
    var height = Number(args.height) || 420;
    var renderer = args.renderer === "svg" ? "svg" : "webgl";
    var sceneText = JSON.stringify(args.scene) + "|" + renderer + "|" + height;
    if (sceneText === lastSceneText && reactRoot !== null) {
      // Same scene as the last rerun: keep the user's camera where it is.
      sendToStreamlit("streamlit:setFrameHeight", { height: height });
      return;
    }
    lastSceneText = sceneText;
    renderLegend(args.legend);
    errorBox.textContent = "";
    sceneRoot.removeAttribute("data-error");
    sceneRoot.style.height = height + "px";

    var props = {
      // CrystalToolkitScene puts this id on its wrapper and on the three.js container (div.three-container);
      // the drawn scene is "#scene-root .three-container > svg" (svg renderer) or "... > canvas" (webgl).
      id: "cosnet-structure-scene",
      data: args.scene,
      sceneSize: height,
      axisView: "SW",
      setProps: function () {},
      settings: {
        renderer: renderer,
        background: "#ffffff",
        transparentBackground: false,
        staticScene: true,
        defaultZoom: 0.8,
        // The svg renderer turns every triangle into an SVG element: coarser meshes keep it quick.
        sphereSegments: renderer === "svg" ? 16 : 32,
        cylinderSegments: renderer === "svg" ? 8 : 16,
      },
    };
    if (args.camera && args.camera.position && args.camera.quaternion) {
      props.customCameraState = args.camera;
    }
    if (reactRoot === null) {
      reactRoot = window.ReactDOM.createRoot(sceneRoot);
    }
    // A new key per scene makes React build a fresh three.js scene instead of patching the old one.
    props.key = "scene-" + renderCount;
    reactRoot.render(window.React.createElement(library.CrystalToolkitScene, props));
    renderCount += 1;
    sceneRoot.setAttribute("data-rendered", String(renderCount));
    sceneRoot.setAttribute("data-renderer", renderer);
    sendToStreamlit("streamlit:setFrameHeight", { height: height });
  }

  window.addEventListener("message", function (event) {
    var data = event.data;
    if (!data || data.type !== "streamlit:render") {
      return;
    }
    try {
      renderScene(data.args || {});
    } catch (err) {
      showError("The structure viewer failed: " + (err && err.message ? err.message : String(err)));
    }
  });

  sendToStreamlit("streamlit:componentReady", { apiVersion: 1 });
})();
