/* Resumable upload with a progress bar for the data set page (no dependencies).
 *
 * 1. Hash the chosen file with SHA-256, reading it slice by slice (never whole in memory): the
 *    server verifies the digest before it keeps the bytes, and skips the transfer when it already
 *    holds them.
 * 2. Start an upload (POST /datasets/{id}/uploads), send chunks with PATCH /uploads/{id}?offset=,
 *    and after a failure ask the server for its offset (GET /uploads/{id}) and resume from there.
 *    An unfinished upload is remembered in localStorage, so choosing the same file again after a
 *    page reload resumes it.
 * 3. Finish it (POST /uploads/{id}/finish) and open the scan of the new version.
 *
 * Every text shown comes from the form's data-msg-* attributes (translated by the server).
 */
(function () {
  "use strict";

  // --- SHA-256 (FIPS 180-4), incremental --------------------------------------------------------
  var K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
  ]);

  function Sha256() {
    this.h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                              0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    this.w = new Uint32Array(64);
    this.block = new Uint8Array(64);
    this.fill = 0;
    this.length = 0; // bytes
  }

  Sha256.prototype.compress = function (bytes, at) {
    var w = this.w, h = this.h, i, t1, t2;
    for (i = 0; i < 16; i++) {
      w[i] = (bytes[at + 4 * i] << 24) | (bytes[at + 4 * i + 1] << 16) |
             (bytes[at + 4 * i + 2] << 8) | bytes[at + 4 * i + 3];
    }
    for (i = 16; i < 64; i++) {
      var x = w[i - 15], y = w[i - 2];
      var s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      var s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (i = 0; i < 64; i++) {
      var S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      var ch = (e & f) ^ (~e & g);
      t1 = (k + S1 + ch + K[i] + w[i]) | 0;
      var S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      var maj = (a & b) ^ (a & c) ^ (b & c);
      t2 = (S0 + maj) | 0;
      k = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
  };

  Sha256.prototype.update = function (bytes) {
    var i = 0, n = bytes.length;
    this.length += n;
    if (this.fill) {
      while (i < n && this.fill < 64) { this.block[this.fill++] = bytes[i++]; }
      if (this.fill < 64) { return; }
      this.compress(this.block, 0);
      this.fill = 0;
    }
    for (; i + 64 <= n; i += 64) { this.compress(bytes, i); }
    while (i < n) { this.block[this.fill++] = bytes[i++]; }
  };

  Sha256.prototype.hex = function () {
    var bits = this.length * 8;
    var pad = new Uint8Array(((this.fill < 56) ? 56 : 120) - this.fill + 8);
    pad[0] = 0x80;
    var hi = Math.floor(bits / 0x100000000), lo = bits >>> 0, end = pad.length;
    pad[end - 8] = hi >>> 24; pad[end - 7] = hi >>> 16; pad[end - 6] = hi >>> 8; pad[end - 5] = hi;
    pad[end - 4] = lo >>> 24; pad[end - 3] = lo >>> 16; pad[end - 2] = lo >>> 8; pad[end - 1] = lo;
    this.update(pad);
    var out = "";
    for (var j = 0; j < 8; j++) { out += ("00000000" + (this.h[j] >>> 0).toString(16)).slice(-8); }
    return out;
  };

  // --- the upload ----------------------------------------------------------------------------------
  var HASH_SLICE = 4 * 1024 * 1024;

  function csrfToken(form) {
    return form.querySelector("input[name=csrf_token]").value;
  }

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  async function call(form, method, url, body, contentType) {
    var headers = { "X-CSRF-Token": csrfToken(form), "Accept": "application/json" };
    if (contentType) { headers["Content-Type"] = contentType; }
    var response = await fetch(url, { method: method, headers: headers, body: body, credentials: "same-origin" });
    var data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok || data === null) {
      var error = new Error((data && data.detail) || form.dataset.msgFailed);
      error.status = response.status;
      // A page instead of JSON (the session ended and we were sent to log in) cannot be retried.
      error.fatal = data === null || (response.status >= 400 && response.status < 500);
      throw error;
    }
    return data;
  }

  async function hashFile(file, onProgress) {
    var sha = new Sha256();
    for (var start = 0; start < file.size; start += HASH_SLICE) {
      var slice = file.slice(start, Math.min(file.size, start + HASH_SLICE));
      sha.update(new Uint8Array(await slice.arrayBuffer()));
      onProgress(Math.min(file.size, start + HASH_SLICE) / file.size);
    }
    return sha.hex();
  }

  function storageKey(form, file, digest) {
    return "df-upload:" + form.dataset.dataset + ":" + digest + ":" + file.size;
  }

  async function upload(form, file, ui) {
    var chunk = parseInt(form.dataset.chunkBytes, 10) || (4 * 1024 * 1024);
    ui.status(form.dataset.msgHashing);
    var digest = await hashFile(file, function (share) { ui.bar(share * 100, true); });
    var key = storageKey(form, file, digest);
    var state = null, id = null;
    try { id = window.localStorage.getItem(key); } catch (e) { id = null; }
    if (id) {
      try { state = await call(form, "GET", "/uploads/" + id); } catch (e) { state = null; }
    }
    if (!state || state.finished) {
      state = await call(form, "POST", "/datasets/" + form.dataset.dataset + "/uploads",
        JSON.stringify({ filename: file.name, size: file.size, sha256: digest }), "application/json");
      try { window.localStorage.setItem(key, state.id); } catch (e) { /* private mode */ }
    }
    var offset = state.offset, failures = 0;
    ui.status(form.dataset.msgUploading);
    while (offset < file.size) {
      ui.bar(offset / file.size * 100, false);
      var body = file.slice(offset, Math.min(file.size, offset + chunk));
      try {
        var answer = await call(form, "PATCH", "/uploads/" + state.id + "?offset=" + offset, body,
                                "application/octet-stream");
        offset = answer.offset;
        failures = 0;
      } catch (error) {
        if (error.fatal && error.status !== 409) { throw error; }
        failures += 1;
        if (failures > 8) { throw error; }
        ui.status(form.dataset.msgRetry);
        await sleep(Math.min(8000, 500 * Math.pow(2, failures)));
        // Where did the server get to? Resume from there (a 409 says our offset was wrong).
        offset = (await call(form, "GET", "/uploads/" + state.id)).offset;
        ui.status(form.dataset.msgUploading);
      }
    }
    ui.bar(100, false);
    ui.status(form.dataset.msgFinishing);
    var done = await call(form, "POST", "/uploads/" + state.id + "/finish");
    try { window.localStorage.removeItem(key); } catch (e) { /* ignore */ }
    ui.status(form.dataset.msgDone);
    return done;
  }

  function init(form) {
    var bar = document.getElementById("upload-progress");
    var status = document.getElementById("upload-status");
    var button = form.querySelector("button[type=submit]");
    var ui = {
      bar: function (percent, hashing) {
        bar.hidden = false;
        bar.value = Math.max(0, Math.min(100, percent));
        bar.dataset.phase = hashing ? "hashing" : "uploading";
      },
      status: function (text) { status.textContent = text; status.classList.remove("error"); }
    };
    form.addEventListener("submit", function (event) {
      var input = form.querySelector("input[type=file]");
      var file = input.files && input.files[0];
      event.preventDefault();
      if (!file) { status.textContent = form.dataset.msgChoose; return; }
      if (file.size === 0) { status.textContent = form.dataset.msgEmpty; return; }
      if (file.size > parseInt(form.dataset.maxBytes, 10)) { status.textContent = form.dataset.msgTooLarge; return; }
      button.disabled = true;
      form.setAttribute("aria-busy", "true");
      upload(form, file, ui).then(function (done) {
        bar.dataset.phase = "done";
        window.location.assign(done.next);
      }).catch(function (error) {
        status.textContent = error.message || form.dataset.msgFailed;
        status.classList.add("error");
        bar.dataset.phase = "failed";
        button.disabled = false;
        form.removeAttribute("aria-busy");
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("upload-form");
    if (form && window.fetch && window.Uint8Array && Blob.prototype.arrayBuffer) { init(form); }
  });
})();
