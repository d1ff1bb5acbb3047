// A browser participant for the SFU tests. Configured by the page URL's query:
//   role=publish|subscribe  transport=ws|whip|whep  sfu=<http base>  token=<join token>
//   room=<ns/name>  report=<report id>  source=camera|pattern  e2ee=<xor key byte or empty>
//   simulcast=1 (publish a 1280x720 camera as layers q, h, f: scaled down by 4, 2, 1)
//   layer=<rid> (subscribe: ask for at most that layer of every video track)
// It reports progress and results as JSON POSTs to /report/<id> on the page's own origin,
// and runs the commands the test queues at /commands/<id> (e.g. setVideoLayer messages).

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
  simulcast: params.get("simulcast") === "1",
  layer: params.get("layer"),
};

const SIMULCAST_ENCODINGS = [
  { rid: "q", scaleResolutionDownBy: 4 },
  { rid: "h", scaleResolutionDownBy: 2 },
  { rid: "f", scaleResolutionDownBy: 1 },
];

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
  if (config.simulcast) {
    // Browsers send every simulcast layer only from about 720p up.
    return navigator.mediaDevices.getUserMedia({
      audio: true,
      video: { width: { exact: 1280 }, height: { exact: 720 }, frameRate: 15 },
    });
  }
  return navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } });
}

function addTracks(pc, stream) {
  for (const track of stream.getTracks()) {
    const init = { direction: "sendonly" };
    if (config.simulcast && track.kind === "video") init.sendEncodings = SIMULCAST_ENCODINGS;
    const sender = pc.addTransceiver(track, init).sender;
    protect(sender);
    if (config.simulcast && track.kind === "video") {
      // A busy test machine must not make the encoder drop layers to save CPU.
      const parameters = sender.getParameters();
      parameters.degradationPreference = "maintain-resolution";
      sender.setParameters(parameters);
    }
  }
}

// Pause the layers no subscriber needs (the SFU's `layersNeeded`), resume the others.
async function setActiveLayers(pc, rids) {
  const sender = pc.getSenders().find((s) => s.track && s.track.kind === "video");
  const parameters = sender.getParameters();
  for (const encoding of parameters.encodings) encoding.active = rids.includes(encoding.rid);
  await sender.setParameters(parameters);
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
    watchFrameSize(video);
  }
  video.srcObject = stream;
  video.play().catch(() => {});
}

// Report when the frames shown change size (a simulcast layer switch reached the screen),
// on the page's clock (`atMs`, like the `sent` and `message` reports).
function watchFrameSize(element) {
  let width = 0;
  const onFrame = (now, frame) => {
    if (frame.width !== width) {
      width = frame.width;
      report("resized", { width: frame.width, height: frame.height, atMs: now });
    }
    element.requestVideoFrameCallback(onFrame);
  };
  element.requestVideoFrameCallback(onFrame);
}

const INBOUND_COUNTS = [
  "packetsReceived",
  "framesReceived",
  "keyFramesDecoded",
  "pliCount",
  "framesDropped",
  "freezeCount",
  "totalFreezesDuration",
];

async function inspect(pc) {
  const stats = await pc.getStats();
  let framesDecoded = 0;
  const inbound = {};
  stats.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      framesDecoded += s.framesDecoded || 0;
      // Diagnostics for a failing test (did packets arrive, were keyframes requested?),
      // and decode trouble: dropped frames, freezes.
      for (const key of INBOUND_COUNTS) inbound[key] = (inbound[key] || 0) + (s[key] || 0);
      inbound.frameWidth = s.frameWidth || 0;
      inbound.frameHeight = s.frameHeight || 0;
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

// What a simulcast publisher sends, per layer.
function watchOutbound(pc) {
  setInterval(async () => {
    const layers = {};
    let bandwidth = null;
    (await pc.getStats()).forEach((s) => {
      if (s.type === "outbound-rtp" && s.kind === "video") {
        layers[s.rid || "-"] = {
          bytesSent: s.bytesSent,
          frameWidth: s.frameWidth || 0,
          active: s.active,
          limitation: s.qualityLimitationReason,
        };
      } else if (s.type === "candidate-pair" && s.nominated) {
        bandwidth = s.availableOutgoingBitrate;
      }
    });
    await report("outbound", { layers, bandwidth });
  }, 500);
}

// Commands from the test: WebSocket messages to send.
function runCommands(send) {
  setInterval(async () => {
    const response = await fetch(`/commands/${config.report}`);
    for (const command of await response.json()) {
      send(command);
      report("sent", { type: command.type, atMs: performance.now() });
    }
  }, 200);
}

// --- WebSocket signalling

function runSignalling() {
  const ws = new WebSocket(config.sfu.replace(/^http/, "ws") + "/ws");
  const send = (message) => ws.send(JSON.stringify(message));
  let publisher = null;
  let subscriber = null;
  const layered = new Set();
  const requested = new Set();
  ws.onopen = () =>
    send({ type: "join", token: config.token, autoSubscribe: config.role === "subscribe" });
  ws.onmessage = async (event) => {
    const message = JSON.parse(event.data);
    const { sdp, ...fields } = message;
    await report("message", { ...fields, error: message.error || null, atMs: performance.now() });
    if (message.type === "joined") {
      runCommands(send);
    }
    if (message.type === "joined" && config.role === "publish") {
      publisher = new RTCPeerConnection(peerConfiguration());
      addTracks(publisher, await localStream());
      await publisher.setLocalDescription(await publisher.createOffer());
      await gathered(publisher);
      send({ type: "publish", sdp: publisher.localDescription.sdp });
    } else if (message.type === "answer") {
      await publisher.setRemoteDescription({ type: "answer", sdp: message.sdp });
      await report("published", { tracks: message.tracks.length });
      watchOutbound(publisher);
    } else if (message.type === "layersNeeded") {
      await setActiveLayers(publisher, message.rids);
    }
    // Remember which tracks have layers, to ask for `config.layer` once they are offered.
    for (const track of message.type === "joined" ? message.tracks : [message.track || {}]) {
      if (track.layers) layered.add(track.trackId);
    }
    if (message.type === "offer") {
      for (const trackId of Object.values(message.tracks)) {
        if (config.layer && layered.has(trackId) && !requested.has(trackId)) {
          requested.add(trackId);
          send({ type: "setVideoLayer", trackId, rid: config.layer });
        }
      }
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
  addTracks(pc, await localStream());
  await postOffer(`${config.sfu}/whip/${config.room}`, pc);
  await report("published", {});
  watchOutbound(pc);
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
