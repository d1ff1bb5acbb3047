// A browser participant for the SFU tests. Configured by the page URL's query:
//   role=publish|subscribe  transport=ws|whip|whep  sfu=<http base>  token=<join token>
//   room=<ns/name>  report=<report id>  source=camera|pattern  e2ee=<xor key byte or empty>
// It reports progress and results as JSON POSTs to /report/<id> on the page's own origin.

const params = new URLSearchParams(location.search);
const config = {
  role: params.get("role"),
  transport: params.get("transport"),
  sfu: params.get("sfu"),
  token: params.get("token"),
  room: params.get("room"),
  report: params.get("report"),
  source: params.get("source") || "camera",
  e2eeKey: params.get("e2ee") ? Number(params.get("e2ee")) : null,
};

async function report(kind, body) {
  await fetch(`/report/${config.report}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ kind, ...body }),
  });
}

window.addEventListener("error", (e) => report("error", { message: String(e.message) }));
window.addEventListener("unhandledrejection", (e) =>
  report("error", { message: String(e.reason && (e.reason.stack || e.reason)) }),
);

// --- end-to-end encryption: XOR of each encoded frame after the bytes the codec's RTP
// packetizer and depacketizer read (VP8: 10 bytes of a keyframe, 3 of a delta frame).

const useScriptTransform = typeof RTCRtpScriptTransform !== "undefined";
let worker = null;

function peerConfiguration() {
  const configuration = { bundlePolicy: "max-bundle" };
  if (config.e2eeKey !== null && !useScriptTransform) {
    configuration.encodedInsertableStreams = true;
  }
  return configuration;
}

function xorTransform(key) {
  return new TransformStream({
    transform(frame, controller) {
      const data = new Uint8Array(frame.data);
      const clear = frame.type === "key" ? 10 : frame.type === "delta" ? 3 : 1;
      for (let i = clear; i < data.length; i++) data[i] ^= key;
      frame.data = data.buffer;
      controller.enqueue(frame);
    },
  });
}

function protect(senderOrReceiver) {
  if (config.e2eeKey === null) return;
  if (useScriptTransform) {
    worker = worker || new Worker("/e2ee-worker.js");
    senderOrReceiver.transform = new RTCRtpScriptTransform(worker, { key: config.e2eeKey });
  } else {
    const streams = senderOrReceiver.createEncodedStreams();
    streams.readable.pipeThrough(xorTransform(config.e2eeKey)).pipeTo(streams.writable);
  }
}

// --- media sources

async function localStream() {
  if (config.source === "pattern") {
    // A known colour (checked by the subscriber) with a moving box so frames differ.
    const canvas = document.createElement("canvas");
    canvas.width = 320;
    canvas.height = 240;
    const context = canvas.getContext("2d");
    let x = 0;
    setInterval(() => {
      context.fillStyle = "rgb(200, 40, 160)";
      context.fillRect(0, 0, canvas.width, canvas.height);
      context.fillStyle = "white";
      context.fillRect(x, 10, 20, 20);
      x = (x + 4) % (canvas.width - 20);
    }, 50);
    return canvas.captureStream(20);
  }
  return navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } });
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
}

// --- rendering check

let video = null;

function attach(stream) {
  if (!video) {
    video = document.createElement("video");
    video.autoplay = true;
    video.muted = true;
    video.playsInline = true;
    document.body.appendChild(video);
  }
  video.srcObject = stream;
  video.play().catch(() => {});
}

async function inspect(pc) {
  const stats = await pc.getStats();
  let framesDecoded = 0;
  const inbound = {};
  stats.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      framesDecoded += s.framesDecoded || 0;
      // Diagnostics for a failing test: did packets arrive, were keyframes requested?
      for (const key of ["packetsReceived", "framesReceived", "keyFramesDecoded", "pliCount"]) {
        inbound[key] = (inbound[key] || 0) + (s[key] || 0);
      }
    }
  });
  const state = pc.connectionState;
  const frame = frameOf(video);  // /frame.js
  if (!frame) return { framesDecoded, nonBlack: 0, inbound, state };
  return { framesDecoded, ...frame, inbound, state };
}

function watch(pc) {
  setInterval(async () => report("render", await inspect(pc)), 500);
}

// --- WebSocket signalling

function runSignalling() {
  const ws = new WebSocket(config.sfu.replace(/^http/, "ws") + "/ws");
  const send = (message) => ws.send(JSON.stringify(message));
  let publisher = null;
  let subscriber = null;
  ws.onopen = () =>
    send({ type: "join", token: config.token, autoSubscribe: config.role === "subscribe" });
  ws.onmessage = async (event) => {
    const message = JSON.parse(event.data);
    await report("message", { type: message.type, error: message.error || null });
    if (message.type === "joined" && config.role === "publish") {
      publisher = new RTCPeerConnection(peerConfiguration());
      const stream = await localStream();
      for (const track of stream.getTracks()) {
        const transceiver = publisher.addTransceiver(track, { direction: "sendonly" });
        protect(transceiver.sender);
      }
      await publisher.setLocalDescription(await publisher.createOffer());
      await gathered(publisher);
      send({ type: "publish", sdp: publisher.localDescription.sdp });
    } else if (message.type === "answer") {
      await publisher.setRemoteDescription({ type: "answer", sdp: message.sdp });
      await report("published", { tracks: message.tracks.length });
    } else if (message.type === "offer") {
      if (!subscriber) {
        subscriber = new RTCPeerConnection(peerConfiguration());
        subscriber.ontrack = (e) => {
          protect(e.receiver);
          if (e.track.kind === "video") attach(new MediaStream([e.track]));
        };
        watch(subscriber);
      }
      await subscriber.setRemoteDescription({ type: "offer", sdp: message.sdp });
      await subscriber.setLocalDescription(await subscriber.createAnswer());
      await gathered(subscriber);
      send({ type: "answer", target: "subscriber", sdp: subscriber.localDescription.sdp });
    }
  };
}

// --- WHIP / WHEP

async function postOffer(url, pc) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${config.token}` },
    body: pc.localDescription.sdp,
  });
  const body = await response.text();
  await report("http", { status: response.status, location: response.headers.get("Location") });
  if (response.status !== 201) throw new Error(`POST ${url}: ${response.status} ${body}`);
  await pc.setRemoteDescription({ type: "answer", sdp: body });
}

async function runWhip() {
  const pc = new RTCPeerConnection(peerConfiguration());
  const stream = await localStream();
  for (const track of stream.getTracks()) {
    protect(pc.addTransceiver(track, { direction: "sendonly" }).sender);
  }
  await postOffer(`${config.sfu}/whip/${config.room}`, pc);
  await report("published", {});
}

async function runWhep() {
  const pc = new RTCPeerConnection(peerConfiguration());
  for (const kind of ["video", "audio"]) {
    // Chromium applies a receiver transform only if it is set before negotiation when
    // the page created the receiver itself (as a WHEP player does).
    protect(pc.addTransceiver(kind, { direction: "recvonly" }).receiver);
  }
  pc.ontrack = (e) => {
    if (e.track.kind === "video") attach(new MediaStream([e.track]));
  };
  watch(pc);
  await postOffer(`${config.sfu}/whep/${config.room}`, pc);
}

(async () => {
  await report("loaded", { scriptTransform: useScriptTransform });
  if (config.transport === "ws") runSignalling();
  else if (config.transport === "whip") await runWhip();
  else await runWhep();
})();
