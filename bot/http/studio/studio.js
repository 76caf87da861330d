// The style studio: one page over the HTTP API (and the bot's Telegram Mini App). No framework, no CDN.
"use strict";
(() => {
  const T = {
    en: { title: "Style studio", step1: "1. Your photo", photo: "Photo", camera: "Camera", snap: "Take photo",
      drop: "…or drop or paste a picture here", step2: "2. A style", style: "Style", stylePicture: "Style picture",
      own: "Any picture", mixWith: "Mix with", none: "nothing", mix: "Mix", step3: "3. Options", strength: "Strength",
      keepColors: "Keep colours", brush: "Brush", small: "small", medium: "medium", large: "large", quality: "Quality",
      quick: "Quick", high: "High quality (slow)", full: "Full resolution", stylize: "Stylize", cancel: "Cancel",
      progress: "Progress", step4: "4. Result", compare: "Compare", download: "Download", share: "Share link",
      send: "Send to chat", recent: "Your recent results", before: "Before", result: "Result",
      needPhoto: "Choose a photo first.", needStyle: "Pick a style (or a style picture).", uploading: "Uploading…",
      queued: (p, eta) => `In the queue: position ${p}` + (eta ? `, about ${Math.ceil(eta)} s` : ""),
      working: (pc) => pc == null ? "Working…" : `Working… ${pc}%`, done: "Done.", failed: (e) => `Failed: ${e}`,
      cancelled: "Cancelled.", sent: "Sent to your chat.", earlier: "Earlier stylization", copied: "Link ready to share:", makeOwn: "Make your own" },
    ru: { title: "Студия стилей", step1: "1. Ваше фото", photo: "Фото", camera: "Камера", snap: "Снять",
      drop: "…или перетащите или вставьте картинку сюда", step2: "2. Стиль", style: "Стиль",
      stylePicture: "Картинка стиля", own: "Любая картинка", mixWith: "Смешать с", none: "ничем", mix: "Смесь",
      step3: "3. Настройки", strength: "Сила", keepColors: "Сохранить цвета", brush: "Кисть", small: "мелкая",
      medium: "средняя", large: "крупная", quality: "Качество", quick: "Быстро", high: "Высокое качество (медленно)",
      full: "Полное разрешение", stylize: "Стилизовать", cancel: "Отмена", progress: "Ход работы",
      step4: "4. Результат", compare: "Сравнить", download: "Скачать", share: "Ссылка",
      send: "Отправить в чат", recent: "Ваши недавние результаты", before: "До", result: "Результат",
      needPhoto: "Сначала выберите фото.", needStyle: "Выберите стиль (или картинку стиля).", uploading: "Загружаю…",
      queued: (p, eta) => `В очереди: место ${p}` + (eta ? `, примерно ${Math.ceil(eta)} с` : ""),
      working: (pc) => pc == null ? "Работаю…" : `Работаю… ${pc}%`, done: "Готово.", failed: (e) => `Не получилось: ${e}`,
      cancelled: "Отменено.", sent: "Отправил в ваш чат.", earlier: "Прошлая стилизация", copied: "Ссылка готова:", makeOwn: "Сделать своё" },
  };
  const $ = (id) => document.getElementById(id);
  let lang = document.documentElement.lang === "ru" ? "ru" : "en";
  const t = (key, ...args) => { const v = T[lang][key]; return typeof v === "function" ? v(...args) : v; };

  function render() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
    document.querySelectorAll("[data-t-label]").forEach((el) => el.setAttribute("aria-label", t(el.dataset.tLabel)));
    document.querySelectorAll("[data-t-alt]").forEach((el) => { el.alt = t(el.dataset.tAlt); });
    $("lang").textContent = lang === "en" ? "RU" : "EN";
    $("lang").setAttribute("aria-label", lang === "en" ? "Русский" : "English");
  }
  $("lang").addEventListener("click", () => { lang = lang === "en" ? "ru" : "en"; localStorage.setItem("lang", lang); render(); });
  if (localStorage.getItem("lang")) lang = localStorage.getItem("lang");

  // -- Telegram Mini App: initData from the launch fragment (or Telegram's script when present) ----------------
  const launch = new URLSearchParams(location.hash.slice(1));
  const tg = window.Telegram && window.Telegram.WebApp;
  const initData = (tg && tg.initData) || launch.get("tgWebAppData") || "";
  const auth = initData ? { Authorization: "tma " + initData } : {};
  function postEvent(type, data) {
    try {
      // the three ways Telegram's own script talks to its clients: mobile webviews, desktop, web (an iframe)
      if (window.TelegramWebviewProxy) window.TelegramWebviewProxy.postEvent(type, JSON.stringify(data || {}));
      else if (window.external && "notify" in window.external) window.external.notify(JSON.stringify({ eventType: type, eventData: data || {} }));
      else if (window.parent !== window) window.parent.postMessage(JSON.stringify({ eventType: type, eventData: data || {} }), "*");
    } catch (e) { /* not inside Telegram */ }
  }
  if (initData) {
    try {
      const theme = JSON.parse(launch.get("tgWebAppThemeParams") || "{}");
      const css = document.documentElement.style;
      if (theme.bg_color) css.setProperty("--bg", theme.bg_color);
      if (theme.text_color) css.setProperty("--fg", theme.text_color);
      if (theme.button_color) css.setProperty("--accent", theme.button_color);
      if (theme.button_text_color) css.setProperty("--accent-fg", theme.button_text_color);
      if (theme.secondary_bg_color) css.setProperty("--card", theme.secondary_bg_color);
    } catch (e) { /* no theme */ }
    postEvent("web_app_ready");
    postEvent("web_app_setup_main_button", { is_visible: true, is_active: true, text: t("stylize") });
    $("send").hidden = false;
    window.Telegram = window.Telegram || {};
    window.Telegram.WebView = window.Telegram.WebView || {};
    window.Telegram.WebView.receiveEvent = (type) => { if (type === "main_button_pressed") go(); };
    window.addEventListener("message", (e) => {
      try { if (JSON.parse(e.data).eventType === "main_button_pressed") go(); } catch (err) { /* not ours */ }
    });
  }

  const api = (path, opts = {}) => fetch(path, { ...opts, headers: { ...auth, ...(opts.headers || {}) } });
  async function problem(r) { try { return (await r.json()).detail; } catch (e) { return r.statusText; } }

  // -- the photo: picker, drop, paste, camera ------------------------------------------------------------------
  let photo = null; // a File or Blob
  function setPhoto(file) {
    if (!file) return;
    photo = file;
    const url = URL.createObjectURL(file);
    const clip = file.type.startsWith("video/");
    $("preview").hidden = clip; $("clip-preview").hidden = !clip;
    if (clip) $("clip-preview").src = url; else $("preview").src = url;
    $("before").src = clip ? "" : url;
  }
  $("photo").addEventListener("change", (e) => setPhoto(e.target.files[0]));
  const drop = $("drop");
  ["dragenter", "dragover"].forEach((n) => drop.addEventListener(n, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((n) => drop.addEventListener(n, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (e) => { e.preventDefault(); setPhoto(e.dataTransfer.files[0]); });
  window.addEventListener("paste", (e) => {
    const item = [...(e.clipboardData || {}).items || []].find((i) => i.kind === "file");
    if (item) setPhoto(item.getAsFile());
  });
  $("camera").addEventListener("click", async () => {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: true });
      $("live").srcObject = stream; $("live").hidden = false; $("snap").hidden = false; await $("live").play();
    } catch (e) { $("status").textContent = String(e.message || e); }
  });
  $("snap").addEventListener("click", () => {
    const v = $("live"), c = document.createElement("canvas");
    c.width = v.videoWidth; c.height = v.videoHeight; c.getContext("2d").drawImage(v, 0, 0);
    c.toBlob((b) => setPhoto(new File([b], "camera.jpg", { type: "image/jpeg" })), "image/jpeg", 0.92);
    v.srcObject.getTracks().forEach((tr) => tr.stop()); v.hidden = true; $("snap").hidden = true;
  });

  // Downscaled in the browser to what the job needs: a 12 MP photo need not upload 8 MB for a 512 px result.
  const UPLOAD_SIDE = 1024;
  async function shrink(file, side) {
    if (!file.type.startsWith("image/") || file.type === "image/gif") return file;
    try {
      const bmp = await createImageBitmap(file, { imageOrientation: "from-image" });
      const scale = Math.min(1, side / Math.max(bmp.width, bmp.height));
      if (scale === 1 && file.size < 1.5e6) return file;
      const c = document.createElement("canvas");
      c.width = Math.round(bmp.width * scale); c.height = Math.round(bmp.height * scale);
      c.getContext("2d").drawImage(bmp, 0, 0, c.width, c.height);
      return await new Promise((ok) => c.toBlob(ok, "image/jpeg", 0.9));
    } catch (e) { return file; } // a format the browser cannot draw (HEIC): the server reads it
  }
  async function naturalSide(file) {
    try { const b = await createImageBitmap(file); return Math.max(b.width, b.height); } catch (e) { return 4096; }
  }

  // -- styles ---------------------------------------------------------------------------------------------------
  let presets = [];
  async function loadPresets() {
    const r = await api("/v1/presets");
    presets = r.ok ? (await r.json()).items : [];
    const box = $("styles");
    box.innerHTML = "";
    const add = (value, title, thumb) => {
      const input = Object.assign(document.createElement("input"), { type: "radio", name: "style", value });
      const label = document.createElement("label");
      const img = document.createElement("img"); img.alt = ""; if (thumb) img.src = thumb; img.loading = "lazy";
      const span = document.createElement("span"); span.textContent = title;
      label.append(input, img, span); // the radio's name is the label's text
      input.addEventListener("change", () => { $("own").hidden = value !== "__own"; });
      box.append(label);
    };
    presets.forEach((p) => add(p.name, p.title, p.thumbnail_url));
    add("__own", t("own"), "");
    const mix = $("mix-with");
    presets.forEach((p) => mix.append(new Option(p.title, p.name)));
  }
  $("mix-with").addEventListener("change", () => { $("mix").disabled = !$("mix-with").value; });
  $("strength").addEventListener("input", () => { $("strength-value").textContent = $("strength").value + "%"; });

  // -- a job --------------------------------------------------------------------------------------------------
  let job = null, controller = null;
  function status(text) { $("status").textContent = text; }
  function progressTo(value) { const p = $("progress"); p.hidden = false; if (value == null) p.removeAttribute("value"); else p.value = value; }

  async function styleFields(fd) {
    const chosen = document.querySelector("input[name=style]:checked");
    if (!chosen) return false;
    const other = $("mix-with").value, share = Number($("mix").value);
    if (chosen.value === "__own") {
      const file = $("style-picture").files[0];
      if (!file) return false;
      fd.append("style", await shrink(file, 768), "style.jpg");
      if (other) {
        const thumb = presets.find((p) => p.name === other);
        const blob = await (await api(thumb.thumbnail_url)).blob();
        fd.append("style", blob, "mix.jpg");
        fd.append("style_weights", `${100 - share},${share}`);
      }
    } else {
      fd.append("preset", other ? `${chosen.value}:${100 - share},${other}:${share}` : chosen.value);
    }
    return true;
  }

  async function go() {
    if (job) return;
    if (!photo) { status(t("needPhoto")); return; }
    const fd = new FormData();
    if (!(await styleFields(fd))) { status(t("needStyle")); return; }
    const clip = photo.type.startsWith("video/") || photo.type === "image/gif";
    const full = $("full").checked;
    fd.append("content", full || clip ? photo : await shrink(photo, UPLOAD_SIDE), clip ? (photo.name || "clip") : "photo.jpg");
    fd.append("strength", String(Number($("strength").value) / 100));
    fd.append("preserve_color", String($("keep-colors").checked));
    fd.append("brush", $("brush").value);
    fd.append("quality", document.querySelector("input[name=quality]:checked").value);
    if (full && !clip) fd.append("size", String(Math.min(4096, await naturalSide(photo))));
    $("go").disabled = true; $("cancel").disabled = false; progressTo(null); status(t("uploading"));
    let r = await api("/v1/stylizations", { method: "POST", body: fd });
    if (r.status === 422 && fd.get("preset") && fd.get("preset").includes(",")) {
      // two presets of different kinds cannot mix as presets: mix their pictures instead
      const [a, b] = fd.get("preset").split(",").map((s) => s.split(":"));
      fd.delete("preset");
      for (const name of [a[0], b[0]]) fd.append("style", await (await api(`/v1/presets/${name}/thumbnail`)).blob(), name + ".jpg");
      fd.append("style_weights", `${a[1]},${b[1]}`);
      r = await api("/v1/stylizations", { method: "POST", body: fd });
    }
    if (!r.ok) { finish(t("failed", await problem(r))); return; }
    job = await r.json();
    follow(job);
  }
  $("go").addEventListener("click", go);

  async function follow(j) {
    controller = new AbortController();
    try {
      const r = await api(j.links.events, { signal: controller.signal });
      const reader = r.body.getReader(), dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
          const ev = (block.match(/^event: (.*)$/m) || [])[1], data = (block.match(/^data: (.*)$/m) || [])[1];
          if (!ev || !data) continue;
          const d = JSON.parse(data);
          if (ev === "position") { status(t("queued", d.position, d.eta_s)); progressTo(null); }
          if (ev === "progress") { const pc = d.progress == null ? null : Math.round(d.progress * 100); status(t("working", pc)); progressTo(pc); }
          if (ev === "done") { await ended(d); return; }
        }
      }
    } catch (e) { if (e.name !== "AbortError") finish(String(e.message || e)); }
  }

  async function ended(d) {
    if (d.status !== "succeeded") { finish(d.status === "cancelled" ? t("cancelled") : t("failed", d.error || d.status)); return; }
    progressTo(100);
    await showResult(d);
    remember(d.id);
    finish(t("done"));
    loadRecent();
  }

  async function showResult(d) {
    const r = await api(d.links.result);
    const blob = await r.blob();
    const url = URL.createObjectURL(blob);
    const clip = blob.type.startsWith("video/");
    $("out").hidden = false;
    $("result-clip").hidden = !clip; $("after-clip").hidden = clip; $("before").hidden = clip;
    if (clip) $("result-clip").src = url; else $("result").src = url;
    const ext = { "image/png": "png", "video/mp4": "mp4", "image/gif": "gif", "image/jpeg": "jpg" }[blob.type] || "bin";
    $("download").href = url; $("download").download = `stylized.${ext}`;
    $("out").dataset.job = d.id;
    $("share-url").hidden = true;
  }

  function finish(text) {
    status(text); job = null; $("go").disabled = false; $("cancel").disabled = true;
    if (controller) controller.abort(); controller = null;
  }

  $("cancel").addEventListener("click", async () => {
    if (!job) return;
    await api(job.links.cancel, { method: "DELETE" });
    finish(t("cancelled")); $("progress").hidden = true;
  });

  $("compare-slider").addEventListener("input", () => {
    $("after-clip").style.clipPath = `inset(0 0 0 ${$("compare-slider").value}%)`;
  });

  $("share").addEventListener("click", async () => {
    const id = $("out").dataset.job;
    const r = await api(`/v1/stylizations/${id}/share`, { method: "POST" });
    if (!r.ok) { status(t("failed", await problem(r))); return; }
    const url = new URL((await r.json()).url, location.href).href;
    $("share-url").value = url; $("share-url").hidden = false; $("share-url").select();
    status(t("copied"));
    try { await navigator.clipboard.writeText(url); } catch (e) { /* shown in the field */ }
  });
  $("send").addEventListener("click", async () => {
    const r = await api(`/v1/stylizations/${$("out").dataset.job}/send`, { method: "POST" });
    status(r.ok ? t("sent") : t("failed", await problem(r)));
  });

  // -- this browser's recent results ---------------------------------------------------------------------------
  function remember(id) {
    const ids = JSON.parse(localStorage.getItem("recent") || "[]").filter((x) => x !== id);
    localStorage.setItem("recent", JSON.stringify([id, ...ids].slice(0, 12)));
  }
  async function loadRecent() {
    const r = await api("/v1/stylizations");
    if (!r.ok) return;
    const list = $("recent"); list.innerHTML = "";
    for (const j of (await r.json()).items.filter((x) => x.status === "succeeded" && x.kind === "picture").slice(0, 8)) {
      const blob = await (await api(j.links.result + "?format=jpeg")).blob();
      const li = document.createElement("li"), btn = document.createElement("button"), img = document.createElement("img");
      img.src = URL.createObjectURL(blob); img.alt = `${t("earlier")} ${list.children.length + 1}`; btn.className = "link"; btn.append(img);
      btn.addEventListener("click", () => showResult(j));
      li.append(btn); list.append(li);
    }
  }

  render();
  loadPresets().then(loadRecent);
})();
