// The Switchboard demo page. Joining asks the dev tooling's demo endpoint (/demo/join) for a
// join token; the page then talks to the SFU itself: WebSocket signalling (sfu/PROTOCOL.md)
// for a call, WHEP to watch. It follows `migrate` (and reconnects after a lost connection)
// by joining again through the demo endpoint, since the API key lives only there.
//
// `window.demo.session` is the current call or watch, for the curious (and the tests).
"use strict";

const DEMO_JOIN = "/demo/join";
const GATHER_TIMEOUT_MS = 5000;
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 5000;
const NOTHING_TO_PLAY_RETRY_MS = 2000;
const DISCONNECTED_GRACE_MS = 4000;
const EVENTS_KEPT = 200;
/** Join API answers that trying again cannot change. */
const FINAL_JOIN_ERRORS = new Set([
  "invalid_name", "invalid_json", "invalid_request", "unauthenticated",
  "namespace_forbidden", "room_creation_forbidden", "room_not_found", "namespace_not_found",
  "body_too_large",
  "unsupported_media_type",
]);
/** SFU refusals that trying again cannot change. */
const FINAL_SFU_ERRORS = new Set(["room-full", "missing-grant", "bad-request"]);

const $ = (id) => document.getElementById(id);

// ---- what the page shows

const view = {
  state(name, detail) {
    const element = $("state");
    element.dataset.state = name;
    element.textContent = detail ? `${name}: ${detail}` : name;
  },

  placement(placed) {
    const where = $("where");
    where.replaceChildren();
    for (const [label, value] of [["Room", placed.room], ["Region", placed.region], ["SFU pod", placed.pod]]) {
      if (where.childNodes.length) where.append(" · ");
      const bold = document.createElement("b");
      bold.textContent = value;
      where.append(`${label} `, bold);
    }
  },

  event(text) {
    const item = document.createElement("li");
    const time = document.createElement("time");
    time.textContent = new Date().toLocaleTimeString();
    item.append(time, text);
    const list = $("events");
    list.prepend(item);
    while (list.childNodes.length > EVENTS_KEPT) list.lastChild.remove();
  },

  /** The tile for `key`, created with `label` if new. */
  tile(key, label, { self = false } = {}) {
    let tile = document.querySelector(`.tile[data-key="${CSS.escape(key)}"]`);
    if (tile) return tile;
    tile = document.createElement("div");
    tile.className = self ? "tile self" : "tile remote";
    tile.dataset.key = key;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = self;  // never play your own microphone back
    video.addEventListener("playing", () => tile.classList.add("playing"));
    const waiting = document.createElement("div");
    waiting.className = "waiting";
    waiting.textContent = "waiting for video…";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = label;
    tile.append(video, waiting, name);
    $("tiles").append(tile);
    return tile;
  },

  /** Show exactly `tracks` in the tile. */
  setTracks(tile, tracks) {
    const video = tile.querySelector("video");
    const current = video.srcObject ? video.srcObject.getTracks() : [];
    if (current.length === tracks.length && tracks.every((t) => current.includes(t))) return;
    video.srcObject = tracks.length ? new MediaStream(tracks) : null;
    if (!tracks.some((t) => t.kind === "video")) tile.classList.remove("playing");
    if (tracks.length) video.play().catch(() => {});
  },

  removeTile(key) {
    document.querySelector(`.tile[data-key="${CSS.escape(key)}"]`)?.remove();
  },

  clearTiles({ keepSelf = false } = {}) {
    for (const tile of document.querySelectorAll(keepSelf ? ".tile.remote" : ".tile")) tile.remove();
  },
};

// ---- talking to the demo endpoint and the SFU

class JoinError extends Error {
  constructor(status, code, message) {
    super(message || `the demo endpoint answered ${status}`);
    this.code = code;
    this.final = FINAL_JOIN_ERRORS.has(code);
  }
}

async function demoJoin(room, identity, watch) {
  let response;
  try {
    response = await fetch(DEMO_JOIN, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ room, identity, watch }),
    });
  } catch (error) {
    throw new JoinError(0, "unreachable", "the demo endpoint did not answer; is `make up` running?");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new JoinError(response.status, body.error?.code, body.error?.message);
  return body;
}

function rtcConfiguration(placed) {
  return { iceServers: placed.iceServers, bundlePolicy: "max-bundle" };
}

/** Resolves once `pc` gathered its candidates (or after GATHER_TIMEOUT_MS, with those it has). */
function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

function retryDelay(failures) {
  const base = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.max(0, failures - 1));
  return base * (0.75 + Math.random() / 2);
}

/** What both sessions share: joining through the demo endpoint, retrying, leaving. */
class Session {
  constructor(room, identity) {
    this.room = room;
    this.identity = identity;
    this.left = false;
    this.failures = 0;
    this.attempt = null;
    this.placement = null;
    this.events = [];
    this.timer = null;
  }

  log(text) {
    this.events.push(text);
    view.event(text);
  }

  /** Join (again) through the demo endpoint, then connect to the SFU it names. */
  async connect() {
    this.timer = null;
    if (this.left) return;
    view.state("joining", `room ${this.room}`);
    let placed;
    try {
      placed = await demoJoin(this.room, this.identity, this.watchOnly);
    } catch (error) {
      if (error.final) return this.finish(error.message);
      return this.retry(error.message);
    }
    if (this.left) return;
    this.placement = placed;
    view.placement(placed);
    this.log(`placed on SFU pod ${placed.pod} (Region ${placed.region})`);
    await this.open(placed);
  }

  retry(reason, delay = retryDelay(++this.failures)) {
    if (this.left || this.timer) return;
    this.log(`${reason}; trying again in ${(delay / 1000).toFixed(1)} s`);
    view.state("reconnecting", reason);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Stop for good, showing why. */
  finish(reason) {
    this.log(reason);
    this.stop();
    view.state("failed", reason);
  }

  leave() {
    this.stop();
    view.state("left");
    this.log("left the room");
  }

  stop() {
    this.left = true;
    clearTimeout(this.timer);
    if (this.attempt) this.close(this.attempt, { leave: true });
  }

  /** The connections media arrives on (for the curious: `getStats()` them). */
  receivers() {
    return [];
  }
}

/** Camera and microphone over WebSocket signalling; one tile per other participant. */
class Call extends Session {
  watchOnly = false;
  migrations = 0;

  async start() {
    this.local = await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: { width: { ideal: 640 }, height: { ideal: 480 } },
    });
    const self = view.tile("self", `${this.identity} (you)`, { self: true });
    view.setTracks(self, this.local.getVideoTracks());
    await this.connect();
  }

  stop() {
    super.stop();
    for (const track of this.local?.getTracks() || []) track.stop();
  }

  receivers() {
    return this.attempt?.subscriber ? [this.attempt.subscriber] : [];
  }

  async open(placed) {
    const attempt = {
      placed,
      ws: new WebSocket(placed.url.replace(/^http/, "ws") + "/ws"),
      publisher: null,
      subscriber: null,
      members: new Map(),  // sessionId -> participant
      tracks: new Map(),  // trackId -> track
      mids: {},  // mid -> trackId, of the subscriber connection
      queue: Promise.resolve(),
      over: false,
    };
    this.attempt = attempt;
    const ws = attempt.ws;
    attempt.send = (message) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
    };
    ws.onopen = () => {
      attempt.opened = true;
      attempt.send({ type: "join", token: placed.token, autoSubscribe: true });
    };
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      // One message at a time: an offer must be answered before the next one is applied.
      attempt.queue = attempt.queue
        .then(() => (attempt.over ? null : this.handle(attempt, message)))
        .catch((error) => this.broken(attempt, String(error)));
    };
    ws.onclose = (event) => this.closed(attempt, event);
  }

  async handle(attempt, message) {
    switch (message.type) {
      case "joined":
        this.failures = 0;
        this.log(`joined room ${message.room} as ${message.identity}`);
        view.state("connecting media");
        for (const participant of message.participants) this.member(attempt, participant);
        for (const track of message.tracks) attempt.tracks.set(track.trackId, track);
        await this.publish(attempt);
        break;
      case "answer":
        await attempt.publisher.setRemoteDescription({ type: "answer", sdp: message.sdp });
        break;
      case "offer":
        await this.answer(attempt, message);
        break;
      case "participantJoined":
        this.member(attempt, message.participant);
        this.log(`${message.participant.identity} joined`);
        break;
      case "participantLeft":
        attempt.members.delete(message.sessionId);
        if (![...attempt.members.values()].some((p) => p.identity === message.identity)) {
          view.removeTile(`peer:${message.identity}`);
        }
        this.log(`${message.identity} left (${message.reason})`);
        break;
      case "trackPublished":
        attempt.tracks.set(message.track.trackId, message.track);
        this.showTracks(attempt);
        break;
      case "trackUnpublished":
        attempt.tracks.delete(message.trackId);
        this.showTracks(attempt);
        break;
      case "subscriptionFailed":
        this.log(`cannot receive track ${message.trackId}: ${message.reason}`);
        break;
      case "migrate":
        this.migrations += 1;
        this.log(`the SFU says migrate (${message.reason})`);
        this.close(attempt, { leave: true });
        if (message.rejoin) {
          view.state("moving", `to another SFU pod (${message.reason})`);
          await this.connect();
        } else {
          this.finish("the room has closed");
        }
        break;
      case "disconnected":
        attempt.disconnected = message.reason;
        break;
      case "error":
        attempt.error = message.error;
        this.log(`the SFU refused: ${message.error} (${message.message})`);
        break;
    }
  }

  member(attempt, participant) {
    attempt.members.set(participant.sessionId, participant);
    if (participant.transport !== "whep") {
      view.tile(`peer:${participant.identity}`, participant.identity);
    }
  }

  async publish(attempt) {
    const pc = (attempt.publisher = new RTCPeerConnection(rtcConfiguration(attempt.placed)));
    pc.onconnectionstatechange = () => this.mediaState(attempt);
    for (const track of this.local.getTracks()) pc.addTransceiver(track, { direction: "sendonly" });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    attempt.send({ type: "publish", sdp: pc.localDescription.sdp });
  }

  async answer(attempt, offer) {
    if (!attempt.subscriber) {
      attempt.subscriber = new RTCPeerConnection(rtcConfiguration(attempt.placed));
      attempt.subscriber.onconnectionstatechange = () => this.mediaState(attempt);
    }
    const pc = attempt.subscriber;
    await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
    attempt.mids = offer.tracks || {};
    this.showTracks(attempt);
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    attempt.send({ type: "answer", target: "subscriber", sdp: pc.localDescription.sdp });
  }

  /** Put every forwarded track into its publisher's tile. */
  showTracks(attempt) {
    if (!attempt.subscriber) return;
    const byIdentity = new Map();
    for (const transceiver of attempt.subscriber.getTransceivers()) {
      const track = attempt.tracks.get(attempt.mids[transceiver.mid]);
      if (!track) continue;
      if (!byIdentity.has(track.identity)) byIdentity.set(track.identity, []);
      byIdentity.get(track.identity).push(transceiver.receiver.track);
    }
    for (const tile of document.querySelectorAll(".tile.remote")) {
      const identity = tile.dataset.key.slice("peer:".length);
      view.setTracks(tile, byIdentity.get(identity) || []);
    }
    for (const [identity, tracks] of byIdentity) {
      if (!document.querySelector(`.tile[data-key="${CSS.escape(`peer:${identity}`)}"]`)) {
        view.setTracks(view.tile(`peer:${identity}`, identity), tracks);
      }
    }
  }

  mediaState(attempt) {
    if (attempt.over) return;
    const states = [attempt.publisher, attempt.subscriber].filter(Boolean).map((pc) => pc.connectionState);
    if (states.includes("failed")) {
      this.broken(attempt, "the media connection failed");
    } else if (states.length && states.every((s) => s === "connected")) {
      view.state("connected");
    }
  }

  closed(attempt, event) {
    if (attempt.over || this.left) return;
    this.close(attempt);
    if (attempt.disconnected === "duplicate-identity") {
      return this.finish(`someone joined this room as "${this.identity}" elsewhere`);
    }
    if (attempt.disconnected === "closing") return this.finish("the room has closed");
    if (FINAL_SFU_ERRORS.has(attempt.error)) return this.finish(`the SFU refused: ${attempt.error}`);
    const why =
      attempt.error ||
      attempt.disconnected ||
      (attempt.opened ? `the connection to the SFU closed (code ${event.code})` : "the SFU pod did not answer");
    this.retry(why);
  }

  broken(attempt, reason) {
    if (attempt.over || this.left) return;
    this.close(attempt, { leave: true });
    this.retry(reason);
  }

  close(attempt, { leave = false } = {}) {
    attempt.over = true;
    if (leave) attempt.send?.({ type: "leave" });
    attempt.ws.close();
    attempt.publisher?.close();
    attempt.subscriber?.close();
    view.clearTiles({ keepSelf: true });
  }
}

/** Watch-only: one publisher's camera and microphone over WHEP. WHEP has no message channel,
 * so no `migrate` arrives: the page joins again when the connection closes. */
class Watch extends Session {
  watchOnly = true;
  reconnections = 0;

  constructor(room, identity, publisher) {
    super(room, identity);
    this.publisher = publisher;
  }

  async start() {
    this.tile = view.tile("watch", `watching ${this.publisher || "the first publisher"}`);
    await this.connect();
  }

  receivers() {
    return this.attempt ? [this.attempt.pc] : [];
  }

  async open(placed) {
    const pc = new RTCPeerConnection(rtcConfiguration(placed));
    const attempt = { placed, pc, resource: null, over: false, grace: null };
    this.attempt = attempt;
    for (const kind of ["video", "audio"]) pc.addTransceiver(kind, { direction: "recvonly" });
    pc.ontrack = () => view.setTracks(this.tile, pc.getReceivers().map((r) => r.track));
    pc.onconnectionstatechange = () => this.mediaState(attempt);
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const query = this.publisher ? `?identity=${encodeURIComponent(this.publisher)}` : "";
    let response;
    try {
      response = await fetch(`${placed.url}/whep/${placed.room}${query}`, {
        method: "POST",
        headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${placed.token}` },
        body: pc.localDescription.sdp,
      });
    } catch (error) {
      this.close(attempt);
      return this.retry("the SFU did not answer");
    }
    if (attempt.over) return;
    if (response.status === 201) {
      attempt.resource = new URL(response.headers.get("Location"), placed.url).href;
      await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
      this.log(`watching over WHEP`);
      return;
    }
    const body = await response.json().catch(() => ({}));
    this.close(attempt);
    if (body.error === "nothing-to-play") {
      view.state("waiting", this.publisher ? `${this.publisher} publishes nothing yet` : "nobody publishes yet");
      this.timer = setTimeout(() => this.connect(), NOTHING_TO_PLAY_RETRY_MS);
      return;
    }
    this.retry(`the SFU refused: ${body.error || response.status}`);
  }

  mediaState(attempt) {
    if (attempt.over) return;
    const state = attempt.pc.connectionState;
    clearTimeout(attempt.grace);
    if (state === "connected") {
      this.failures = 0;
      view.state("connected");
    } else if (state === "failed" || state === "closed") {
      this.lost(attempt, state);
    } else if (state === "disconnected") {
      // Often a blip; a session the SFU ended never comes back.
      attempt.grace = setTimeout(() => this.lost(attempt, state), DISCONNECTED_GRACE_MS);
    }
  }

  lost(attempt, state) {
    if (attempt.over || this.left) return;
    this.reconnections += 1;
    this.close(attempt);
    this.retry(`the WHEP connection is ${state}`, RETRY_FIRST_MS);
  }

  close(attempt) {
    attempt.over = true;
    clearTimeout(attempt.grace);
    if (attempt.resource) fetch(attempt.resource, { method: "DELETE" }).catch(() => {});
    attempt.pc.close();
    view.setTracks(this.tile, []);
  }
}

// ---- the form

const demo = { session: null };
window.demo = demo;

function showCall(visible) {
  $("join").hidden = visible;
  $("call").hidden = !visible;
}

function prefill() {
  const query = new URLSearchParams(location.search);
  if (query.get("room")) $("room").value = query.get("room");
  $("name").value = query.get("name") || `guest-${Math.floor(1000 + Math.random() * 9000)}`;
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", () => {
      $("watch-whom").hidden = document.querySelector('input[name="mode"]:checked').value !== "watch";
    });
  }
}

$("join").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("form-error").textContent = "";
  const room = $("room").value.trim();
  const name = $("name").value.trim();
  const watch = document.querySelector('input[name="mode"]:checked').value === "watch";
  // A link to this page with the room filled in, for the next tab.
  const link = `?room=${encodeURIComponent(room)}`;
  history.replaceState(null, "", link);
  $("invite").href = link;
  const session = watch ? new Watch(room, name, $("publisher").value.trim()) : new Call(room, name);
  demo.session = session;
  $("events").replaceChildren();
  showCall(true);
  try {
    await session.start();
  } catch (error) {
    session.stop();
    view.clearTiles();
    showCall(false);
    $("form-error").textContent =
      error.name === "NotAllowedError" ? "The page needs your camera and microphone." : String(error.message || error);
  }
});

$("leave-button").addEventListener("click", () => {
  demo.session?.leave();
  view.clearTiles();
  showCall(false);
});

window.addEventListener("pagehide", () => demo.session?.stop());

prefill();
