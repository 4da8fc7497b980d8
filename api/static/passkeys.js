// Powertrip's step-up and passkey registration pages: one ceremony per button press.
// The server makes the options (with a fresh challenge) and checks the answer; this script only
// hands them between the server and the browser's WebAuthn API.
"use strict";
(function () {
  const main = document.querySelector("main[data-ceremony]");
  if (!main) return;
  const kind = main.dataset.ceremony; // "get": step-up, "create": registration
  const button = document.getElementById("go");
  const status = document.getElementById("status");
  const label = document.getElementById("label");

  function show(state, text, refusal) {
    main.dataset.state = state;
    main.dataset.refusal = refusal || "";
    status.textContent = text;
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
      credentials: "same-origin",
    });
    let data = {};
    try {
      data = await response.json();
    } catch (e) {
      data = { message: "Powertrip answered " + response.status + "." };
    }
    return { ok: response.ok, data: data };
  }

  async function run() {
    const P = window.PublicKeyCredential;
    if (!P || !P.parseRequestOptionsFromJSON || !P.parseCreationOptionsFromJSON) {
      show("error", "This browser cannot use passkeys here: open the link in a current " +
        "Chrome, Edge, Safari or Firefox.");
      return;
    }
    button.disabled = true;
    show("working", "Asking for the passkey…");
    const here = window.location.pathname;
    const begun = await post(here + "/options");
    if (!begun.ok) {
      show("refused", begun.data.message || "Could not start.", begun.data.refusal);
      return;
    }
    let credential;
    try {
      credential = kind === "get"
        ? await navigator.credentials.get({ publicKey: P.parseRequestOptionsFromJSON(begun.data) })
        : await navigator.credentials.create({ publicKey: P.parseCreationOptionsFromJSON(begun.data) });
    } catch (e) {
      button.disabled = false;
      const why = e && e.name === "NotAllowedError"
        ? "Cancelled, timed out, or this device has no passkey that can do it (one that " +
          "verifies you: fingerprint, face or PIN)."
        : "The browser refused: " + (e && e.message ? e.message : e);
      show("retry", why + " Nothing was sent; you can try again.");
      return;
    }
    show("working", "Checking…");
    const body = kind === "get"
      ? credential.toJSON()
      : { credential: credential.toJSON(), label: label ? label.value : "" };
    const done = await post(here, body);
    show(done.ok ? "done" : "refused", done.data.message || "", done.data.refusal);
  }

  button.addEventListener("click", function () {
    run().catch(function (e) {
      button.disabled = false;
      show("error", "Something went wrong: " + e + ". Nothing was approved.");
    });
  });
})();
