() => {
  // Talk mode (hands-free): listen -> send the utterance as a voice turn -> the reply is spoken -> listen again.
  // Speech is found by loudness (RMS over ~85 ms frames); speaking over the reply (barge-in) stops it.
  // Echo cancellation keeps the reply out of the microphone; no gain control or noise suppression (Whisper
  // hears the raw signal better, and gain control clipped loud voices).
  // The page's parts are found by elem_id: #talk-btn, #talk-status, #talk-data, #talk-id, #talk-send,
  // #talk-cancel, #talk-turn-done, #talk-spoken-done, #reply-audio (see ui.py `_speech`).
  if (window.ifTalk) return;
  const START_RMS = 0.015;   // louder than this is speech (with the browser's noise suppression)
  const BARGE_RMS = 0.03;    // while the reply plays, only clearly louder speech interrupts it
  const START_FRAMES = 2;    // ~170 ms of speech starts an utterance
  const BARGE_FRAMES = 3;    // ~250 ms of speech over the reply stops it
  const END_SILENCE_S = 0.9; // this much quiet after speech ends the utterance
  const MIN_SPEECH_S = 0.3;  // shorter noises are ignored
  const MAX_UTTERANCE_S = 30;
  const PREROLL_FRAMES = 4;  // kept from before the start, so the first syllable is not cut
  const RATE = 16000;        // what is sent (Whisper's rate)
  const $ = (s) => document.querySelector(s);
  const T = (window.ifTalk = { state: "off", rounds: 0 });
  let stream = null, ctx = null, node = null, frames = [], preroll = [], loud = 0, quiet = 0, voiced = 0;
  let sent = 0, waitSince = 0, idleSince = 0, timer = null;

  // The words it shows, in the page's language: #talk-status's data-lang ("auto": the browser's, as the server).
  const WORDS = {
    en: { stop: "■ Stop talking", listening: "🎙 Listening… (speak; pause to send)", hearing: "🔴 Hearing you…",
          thinking: "⏳ Transcribing and replying…", speaking: "🔊 Replying… (speak to interrupt)",
          nomic: "The microphone is not available: ", off: "Talk mode is off." },
    zh: { stop: "■ 停止对话", listening: "🎙 正在听…（说完停顿一下就会发送）", hearing: "🔴 正在听你说…",
          thinking: "⏳ 正在转写并回复…", speaking: "🔊 正在回复…（开口说话可以打断）",
          nomic: "无法使用麦克风：", off: "对话模式已关闭。" },
  };
  const say = (key) => {
    const el = $("#talk-status"), set = el ? el.dataset.lang : "auto";
    const lang = set === "zh" || (set === "auto" && (navigator.language || "").toLowerCase().startsWith("zh"));
    return WORDS[lang ? "zh" : "en"][key];
  };
  const status = (text) => { const el = $("#talk-status"); if (el) el.textContent = text; };
  const setState = (state, text) => {
    T.state = state;
    status(text);
    const b = $("#talk-btn");
    if (b) {
      b.dataset.start = b.dataset.start || b.textContent;
      b.textContent = state === "off" ? b.dataset.start : say("stop");
    }
    document.body.dataset.talk = state;
  };
  const audio = () => $("#reply-audio audio");
  const playing = () => { const a = audio(); return !!a && !a.paused && !a.ended; };
  const boxValue = (id) => { const el = $(`#${id} textarea, #${id} input`); return el ? el.value : ""; };
  const setBox = (id, value) => {
    const el = $(`#${id} textarea, #${id} input`);
    el.value = value;
    el.dispatchEvent(new Event("input", { bubbles: true }));
  };

  function wav(chunks, rate) {
    // Mono 16-bit PCM at RATE from float chunks at `rate` (box-filter downsampling).
    const n = chunks.reduce((s, c) => s + c.length, 0), all = new Float32Array(n);
    let k = 0;
    for (const c of chunks) { all.set(c, k); k += c.length; }
    const step = rate / RATE, out = new Int16Array(Math.floor(n / step));
    for (let i = 0; i < out.length; i++) {
      const a = Math.floor(i * step), b = Math.max(a + 1, Math.floor((i + 1) * step));
      let s = 0;
      for (let j = a; j < b; j++) s += all[j];
      out[i] = Math.max(-1, Math.min(1, s / (b - a))) * 32767;
    }
    const buf = new ArrayBuffer(44 + out.length * 2), v = new DataView(buf);
    const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
    str(0, "RIFF"); v.setUint32(4, 36 + out.length * 2, true); str(8, "WAVE"); str(12, "fmt ");
    v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true); v.setUint32(24, RATE, true);
    v.setUint32(28, RATE * 2, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true); str(36, "data");
    v.setUint32(40, out.length * 2, true);
    new Int16Array(buf, 44).set(out);
    let bin = "";
    const bytes = new Uint8Array(buf);
    for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return "data:audio/wav;base64," + btoa(bin);
  }

  function listen() {
    frames = []; loud = 0; quiet = 0; voiced = 0;
    setState("listening", say("listening"));
  }

  function send() {
    const data = wav(frames, ctx.sampleRate);
    frames = [];
    sent += 1;
    T.rounds = sent;
    setBox("talk-data", data);
    setBox("talk-id", String(sent));
    waitSince = performance.now();
    idleSince = 0;
    setState("thinking", say("thinking"));
    setTimeout(() => $("#talk-send").click(), 50); // let the inputs reach Gradio first
  }

  function bargeIn() {
    const a = audio();
    if (a) a.pause();
    $("#talk-cancel").click(); // the reply stops after its current token, its speech is cancelled
    T.barged = (T.barged || 0) + 1;
    frames = preroll.slice(); voiced = 0; quiet = 0;
    setState("recording", say("hearing"));
  }

  function onFrame(frame) {
    const rms = Math.sqrt(frame.reduce((s, x) => s + x * x, 0) / frame.length);
    const seconds = frame.length / ctx.sampleRate;
    preroll.push(frame);
    if (preroll.length > PREROLL_FRAMES) preroll.shift();
    if (T.state === "listening") {
      loud = rms > START_RMS ? loud + 1 : 0;
      if (loud >= START_FRAMES) { frames = preroll.slice(); voiced = loud * seconds; quiet = 0; setState("recording", say("hearing")); }
    } else if (T.state === "recording") {
      frames.push(frame);
      if (rms > START_RMS) { voiced += seconds; quiet = 0; } else { quiet += seconds; }
      const total = frames.length * seconds;
      if (quiet >= END_SILENCE_S || total >= MAX_UTTERANCE_S) {
        if (voiced >= MIN_SPEECH_S) send(); else listen();
      }
    } else if (T.state === "thinking" || T.state === "speaking") {
      loud = rms > BARGE_RMS ? loud + 1 : 0;
      if (loud >= BARGE_FRAMES) bargeIn();
    }
  }

  function tick() {
    // While a reply is under way: listen again once the turn and its speech are done and the audio is quiet.
    if (T.state !== "thinking" && T.state !== "speaking") return;
    const id = String(sent), now = performance.now();
    const answered = boxValue("talk-turn-done") === id, spoken = boxValue("talk-spoken-done") === id;
    if (T.state === "thinking" && answered) setState("speaking", say("speaking"));
    if (!(answered && spoken)) return;
    if (playing()) { idleSince = 0; return; }
    idleSince = idleSince || now;
    if (now - idleSince > 1200) listen(); // quiet for a moment after the last sentence (or nothing to say)
  }

  async function start() {
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
      });
    } catch (e) {
      setState("off", say("nomic") + (e && e.message ? e.message : e));
      return;
    }
    ctx = new AudioContext();
    const source = ctx.createMediaStreamSource(stream);
    node = ctx.createScriptProcessor(4096, 1, 1);
    const mute = ctx.createGain();
    mute.gain.value = 0;
    node.onaudioprocess = (e) => onFrame(new Float32Array(e.inputBuffer.getChannelData(0)));
    source.connect(node); node.connect(mute); mute.connect(ctx.destination);
    timer = setInterval(tick, 200);
    listen();
  }

  function stop() {
    if (timer) clearInterval(timer);
    if (node) node.onaudioprocess = null;
    if (stream) stream.getTracks().forEach((t) => t.stop());
    if (ctx) ctx.close();
    stream = ctx = node = timer = null;
    const a = audio();
    if (a) a.pause();
    if (T.state === "thinking" || T.state === "speaking") $("#talk-cancel").click();
    setState("off", say("off"));
  }

  T.toggle = () => { if (T.state === "off") start(); else stop(); };
  T.start = start;
  T.stop = stop;
}
