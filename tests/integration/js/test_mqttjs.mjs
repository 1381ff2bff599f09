#!/usr/bin/env node
/*
 * Integration test of a real node with MQTT.js (npm `mqtt`, v5), the most
 * used JavaScript client, speaking MQTT 5.0.
 *
 * Starts the bulwark binary on ephemeral loopback ports (read back from its
 * log, as tests/integration/node.py does), then checks: QoS 2 exactly once
 * and QoS 1 redelivery with DUP across a reconnect to a persistent session,
 * topic aliases in both directions, subscription identifiers, request /
 * response properties passed through unchanged, shared subscriptions,
 * no-local, retain handling and retain-as-published, message expiry of a
 * retained message, session takeover (DISCONNECT 0x8E) and the server's
 * Receive Maximum (DISCONNECT 0x93, with raw mqtt-packet frames), then a
 * clean stop on SIGTERM. Every wait is bounded and waits on an event; the
 * one timed sleep is the message-expiry case, where time is the subject.
 * Prints `ok   name` or `FAIL name detail` a check; exits 1 on any failure.
 *
 * Usage: node test_mqttjs.mjs BULWARK_BINARY
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';

const BIN = process.argv[2];
const TIMEOUT_MS = 10000; /* one wait for one event */
const CASE_TIMEOUT_MS = 30000; /* one whole case */

let passed = 0;
const failures = [];

function check(name, cond, detail = '') {
  if (cond) {
    passed++;
    console.log(`ok   ${name}`);
  } else {
    failures.push(name);
    console.log(`FAIL ${name} ${detail}`);
  }
}

/* Resolves or rejects as promise does, or rejects after ms naming what. */
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/*
 * Things that arrive (messages, packets), and waits on them: until(pred)
 * resolves with pred's first truthy result over the items so far, checked
 * now and on every push, or rejects after ms.
 */
class Inbox {
  constructor() {
    this.items = [];
    this.waiters = [];
  }

  push(item) {
    this.items.push(item);
    this.waiters = this.waiters.filter((w) => !w());
  }

  until(pred, what, ms = TIMEOUT_MS) {
    return withTimeout(new Promise((resolve) => {
      const w = () => {
        const r = pred(this.items);
        if (r) resolve(r);
        return !!r;
      };
      if (!w()) this.waiters.push(w);
    }), ms, what);
  }

  count(n, what, ms = TIMEOUT_MS) {
    return this.until((items) => items.length >= n, `${what} (${n} wanted)`, ms);
  }
}

/* One line a packet, for failure details. */
function trace(packets) {
  return packets.map((p) => {
    const f = [p.cmd];
    if (p.messageId) f.push(`id=${p.messageId}`);
    if (p.topic != null) f.push(`topic=${JSON.stringify(String(p.topic))}`);
    if (p.dup) f.push('dup');
    if (p.reasonCode !== undefined) f.push(`rc=0x${p.reasonCode.toString(16)}`);
    if (p.properties) f.push(JSON.stringify(p.properties));
    return f.join(' ');
  }).join(' | ');
}

/*
 * Starts the node with port-0 listeners and a debug log in tmp. Resolves
 * { proc, mqttPort, output } once the log names both listeners' ports, or
 * rejects (the node is killed) when it exits or takes longer than
 * TIMEOUT_MS.
 */
async function startNode(tmp) {
  const log = path.join(tmp, 'node.log');
  const args = [];
  for (const s of ['listen=mqtt 127.0.0.1:0 allow_anonymous=true', 'listen=http 127.0.0.1:0',
    'log_level=debug', `log_file=${log}`, `state_dir=${path.join(tmp, 'state')}`]) {
    args.push('--set', s);
  }
  const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = [];
  proc.stdout.on('data', (b) => output.push(b));
  proc.stderr.on('data', (b) => output.push(b));
  const exited = once(proc, 'exit');
  const deadline = Date.now() + TIMEOUT_MS;
  let ports = {};
  while (Date.now() < deadline && proc.exitCode === null && proc.signalCode === null) {
    const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
    for (const m of text.matchAll(/listening: (\w+) \S+ \(port (\d+)\)/g)) ports[m[1]] = +m[2];
    if (ports.mqtt && ports.http) return { proc, mqttPort: ports.mqtt, output, exited, log };
    /* Polling a file: the log has no event to wait on. */
    await sleep(50);
  }
  proc.kill('SIGKILL');
  throw new Error(`node did not start: ${Buffer.concat(output).toString()}`);
}

/*
 * A case's clients: connect() starts one (MQTT 5.0, no automatic
 * reconnect) and calls setup(client) before any packet can arrive, so
 * handlers miss nothing; it resolves { client, connack }. close() ends them
 * all, forcibly.
 */
class Clients {
  constructor(port) {
    this.port = port;
    this.all = [];
    this.errors = [];
  }

  connect(opts = {}, setup = null) {
    const client = mqtt.connect(`mqtt://127.0.0.1:${this.port}`, {
      protocolVersion: 5,
      reconnectPeriod: 0,
      connectTimeout: TIMEOUT_MS,
      ...opts,
    });
    this.all.push(client);
    client.on('error', (e) => this.errors.push(`${opts.clientId}: ${e.message}`));
    if (setup) setup(client);
    return withTimeout(new Promise((resolve, reject) => {
      client.once('connect', (connack) => resolve({ client, connack }));
      client.once('error', reject);
    }), TIMEOUT_MS, `CONNACK for ${opts.clientId}`);
  }

  async close() {
    await withTimeout(Promise.all(this.all.map((c) => c.endAsync(true))), TIMEOUT_MS,
      'closing clients').catch(() => {});
  }
}

/* Collects 'message' events of client as { topic, payload, packet }. */
function inboxOf(client) {
  const inbox = new Inbox();
  client.on('message', (topic, payload, packet) => inbox.push({ topic, payload: payload.toString(), packet }));
  return inbox;
}

/* mqtt-packet parses User Properties into a null-prototype object. */
const plainProps = (p) => (p && p.userProperties ? { ...p, userProperties: { ...p.userProperties } } : { ...p });

const ids = (v) => (v === undefined ? [] : [].concat(v)).sort((a, b) => a - b);

/*
 * QoS 2 exactly once across a reconnect to a persistent session. Messages
 * 0-9 are delivered before the cut. Messages 10-39 are published in one
 * burst; on PUBLISH 25 the subscriber's connection is destroyed (no
 * DISCONNECT) before MQTT.js answers it, leaving deliveries in flight in
 * several states (PUBREC sent and PUBREL unanswered, PUBREL received but
 * unhandled, PUBLISH unanswered, not yet sent). Messages 40-49 are
 * published while the subscriber is away. The same client id reconnects
 * with the same incoming store (what an application persists); every
 * payload must reach the application exactly once.
 */
async function qos2ExactlyOnce(t) {
  const N = 50;
  const seen = new Map();
  const app = new Inbox();
  const onMessage = (topic, payload) => {
    const p = payload.toString();
    seen.set(p, (seen.get(p) || 0) + 1);
    app.push(p);
  };
  const store = new mqtt.Store({ clean: false });
  const opts = {
    clientId: 'js-q2-sub', clean: false, properties: { sessionExpiryInterval: 300 },
    incomingStore: store,
  };
  let cutDone;
  const cut = new Promise((resolve) => { cutDone = resolve; });
  let first;
  const s1 = await t.connect({
    ...opts,
    /* Called on each PUBLISH before MQTT.js stores it and sends PUBREC. */
    customHandleAcks: (topic, payload, packet, done) => {
      if (payload.toString() === 'q2-25') {
        first.stream.destroy();
        cutDone();
      }
      done(0);
    },
  }, (c) => {
    first = c;
    c.on('message', onMessage);
  });
  const s1Closed = once(s1.client, 'close');
  await s1.client.subscribeAsync('js/q2/#', { qos: 2 });
  const pub = await t.connect({ clientId: 'js-q2-pub' });
  const publish = (from, to) => {
    const sent = [];
    for (let i = from; i < to; i++) sent.push(pub.client.publishAsync('js/q2/x', `q2-${i}`, { qos: 2 }));
    return withTimeout(Promise.all(sent), TIMEOUT_MS, `publisher PUBCOMPs ${from}-${to - 1}`);
  };
  await publish(0, 10);
  await app.count(10, 'QoS 2 messages 0-9 before the cut');
  await publish(10, 40);
  await withTimeout(cut, TIMEOUT_MS, 'QoS 2 PUBLISH 25 (the cut)');
  await withTimeout(s1Closed, TIMEOUT_MS, 'first connection closed');
  const beforeCut = seen.size;
  await publish(40, N);

  /* Resent: PUBLISHes with DUP, PUBRELs for an id not published on this connection. */
  const resumed = { publish: 0, pubrel: 0 };
  const publishedHere = new Set();
  const s2 = await t.connect(opts, (c) => {
    c.on('message', onMessage);
    c.on('packetreceive', (p) => {
      if (p.cmd === 'publish') {
        publishedHere.add(p.messageId);
        if (p.dup) resumed.publish++;
      } else if (p.cmd === 'pubrel' && !publishedHere.has(p.messageId)) {
        resumed.pubrel++;
      }
    });
  });
  check('QoS 2 reconnect: CONNACK session present', s2.connack.sessionPresent === true,
    JSON.stringify(s2.connack));
  /*
   * A marker published after all N: the session's queue is in order, so
   * once it arrives any late duplicate of the N would have arrived too.
   */
  await pub.client.publishAsync('js/q2/x', 'q2-end', { qos: 2 });
  await app.until((items) => items.includes('q2-end'), 'QoS 2 marker after the reconnect')
    .catch(() => {});
  const missing = [];
  const dups = [];
  for (let i = 0; i < N; i++) {
    const n = seen.get(`q2-${i}`) || 0;
    if (n === 0) missing.push(i);
    if (n > 1) dups.push(`${i}x${n}`);
  }
  const detail = `seen before the cut ${beforeCut}, resent on reconnect: ${resumed.publish} ` +
    `PUBLISH (DUP), ${resumed.pubrel} PUBREL`;
  console.log(`     (${detail})`);
  /* PUBLISH 25 was never answered; PUBRECs for 10-24 reached the broker before the cut. */
  check('QoS 2 reconnect: unanswered PUBLISHes resent with DUP, PUBREC\'d ones resent as PUBREL',
    resumed.publish >= 1 && resumed.pubrel >= 1, detail);
  check(`QoS 2 across an abrupt reconnect: ${N} payloads, each delivered exactly once`,
    missing.length === 0 && dups.length === 0 && seen.get('q2-end') === 1,
    `${detail}; missing [${missing}], duplicated [${dups}], marker ${seen.get('q2-end')}`);
}

/*
 * QoS 1 redelivery with DUP. The first subscriber withholds its PUBACKs
 * (customHandleAcks never answers, which also stalls MQTT.js's handling of
 * later packets); a tap on the socket counts the PUBLISHes the broker
 * actually wrote. The connection is then destroyed; the reconnect must get
 * all of them again, each with DUP set. Both connections accept topic
 * aliases, so the resends must also not lean on the dead connection's
 * aliases.
 */
async function qos1Redelivery(t) {
  const N = 5;
  const opts = {
    clientId: 'js-q1-sub', clean: false,
    properties: { sessionExpiryInterval: 300, topicAliasMaximum: 10 },
  };
  const wire = new Inbox();
  const s1 = await t.connect({ ...opts, customHandleAcks: () => {} }, (c) => {
    const parser = mqttPacket.parser({ protocolVersion: 5 });
    parser.on('packet', (p) => { if (p.cmd === 'publish') wire.push(p); });
    c.stream.on('data', (b) => parser.parse(b));
  });
  await s1.client.subscribeAsync('js/q1/#', { qos: 1 });
  const pub = await t.connect({ clientId: 'js-q1-pub' });
  for (let i = 0; i < N; i++) await pub.client.publishAsync('js/q1/x', `q1-${i}`, { qos: 1 });
  await wire.count(N, 'PUBLISHes written to the first connection');
  check('QoS 1 first deliveries: DUP clear', wire.items.every((p) => !p.dup), trace(wire.items));
  const s1Closed = once(s1.client, 'close');
  s1.client.stream.destroy();
  await withTimeout(s1Closed, TIMEOUT_MS, 'first connection closed');

  let inbox;
  const s2 = await t.connect(opts, (c) => { inbox = inboxOf(c); });
  check('QoS 1 reconnect: CONNACK session present', s2.connack.sessionPresent === true,
    JSON.stringify(s2.connack));
  await inbox.count(N, 'redeliveries').catch(() => {});
  const got = inbox.items;
  check(`QoS 1 unacknowledged messages redelivered with DUP (${N})`,
    got.length === N && got.every((m) => m.packet.dup === true && m.topic === 'js/q1/x') &&
    isDeepStrictEqual(got.map((m) => m.payload), [...Array(N).keys()].map((i) => `q1-${i}`)),
    trace(got.map((m) => m.packet)) + ` errors: ${t.errors}`);
}

/*
 * Broker-assigned topic aliases: to a subscriber that announced a Topic
 * Alias Maximum, the first PUBLISH on a topic carries the topic and an
 * alias, the later ones only the alias (an empty topic). MQTT.js resolves
 * the alias, so the application still sees the full topic.
 */
async function brokerTopicAliases(t) {
  const N = 4;
  const topic = 'js/alias/a/rather/long/topic/name/that/is/worth/an/alias';
  const raw = [];
  let inbox;
  const sub = await t.connect({ clientId: 'js-alias-sub', properties: { topicAliasMaximum: 10 } },
    (c) => {
      /* Copied now: the packet object is the one MQTT.js goes on to handle. */
      c.on('packetreceive', (p) => {
        if (p.cmd === 'publish') raw.push({ ...p, topic: String(p.topic), properties: { ...p.properties } });
      });
      inbox = inboxOf(c);
    });
  await sub.client.subscribeAsync('js/alias/#', { qos: 1 });
  const pub = await t.connect({ clientId: 'js-alias-pub' });
  for (let i = 0; i < N; i++) await pub.client.publishAsync(topic, `al-${i}`, { qos: 1 });
  await inbox.count(N, 'aliased messages').catch(() => {});
  const alias = raw[0] && raw[0].properties.topicAlias;
  check('broker topic alias: first PUBLISH has the topic and an alias within 1..10',
    raw.length === N && raw[0].topic === topic && alias >= 1 && alias <= 10, trace(raw));
  check('broker topic alias: later PUBLISHes have an empty topic and the same alias',
    raw.length === N && raw.slice(1).every((p) => p.topic === '' && p.properties.topicAlias === alias),
    trace(raw));
  check('broker topic alias: the application sees the full topic on every message',
    inbox.items.length === N && inbox.items.every((m) => m.topic === topic) &&
    isDeepStrictEqual(inbox.items.map((m) => m.payload), [...Array(N).keys()].map((i) => `al-${i}`)),
    JSON.stringify(inbox.items.map((m) => [m.topic, m.payload])) + ` errors: ${t.errors}`);
}

/*
 * Client-side topic aliases: the publisher defines alias 1, uses it with an
 * empty topic, then rebinds it to another topic and uses it again.
 */
async function clientTopicAliases(t) {
  const first = 'js/calias/first/long/topic';
  const second = 'js/calias/second/long/topic';
  let inbox;
  const sub = await t.connect({ clientId: 'js-calias-sub' }, (c) => { inbox = inboxOf(c); });
  await sub.client.subscribeAsync('js/calias/#', { qos: 1 });
  const sentRaw = [];
  const pub = await t.connect({ clientId: 'js-calias-pub' }, (c) => {
    c.on('packetsend', (p) => { if (p.cmd === 'publish') sentRaw.push({ ...p, topic: String(p.topic) }); });
  });
  check('client topic alias: CONNACK announces a Topic Alias Maximum',
    pub.connack.properties && pub.connack.properties.topicAliasMaximum >= 1,
    JSON.stringify(pub.connack.properties));
  const alias = { qos: 1, properties: { topicAlias: 1 } };
  await pub.client.publishAsync(first, 'ca-0', alias);
  await pub.client.publishAsync('', 'ca-1', alias);
  await pub.client.publishAsync(second, 'ca-2', alias);
  await pub.client.publishAsync('', 'ca-3', alias);
  await inbox.count(4, 'messages published with an alias').catch(() => {});
  check('client topic alias: PUBLISHes 2 and 4 went out with an empty topic',
    sentRaw.length === 4 && sentRaw[1].topic === '' && sentRaw[3].topic === '', trace(sentRaw));
  check('client topic alias: subscriber gets the topic each alias stood for',
    isDeepStrictEqual(inbox.items.map((m) => [m.topic, m.payload]),
      [[first, 'ca-0'], [first, 'ca-1'], [second, 'ca-2'], [second, 'ca-3']]),
    JSON.stringify(inbox.items.map((m) => [m.topic, m.payload])) + ` errors: ${t.errors}`);
}

/*
 * Subscription identifiers: overlapping subscriptions with ids 1 and 2 give
 * one message carrying both. A marker on a third subscription, published
 * after, bounds the wait for a second copy.
 */
async function subscriptionIdentifiers(t) {
  let inbox;
  const sub = await t.connect({ clientId: 'js-sid-sub' }, (c) => { inbox = inboxOf(c); });
  await sub.client.subscribeAsync('js/sid/+', { qos: 1, properties: { subscriptionIdentifier: 1 } });
  await sub.client.subscribeAsync('js/sid/#', { qos: 1, properties: { subscriptionIdentifier: 2 } });
  await sub.client.subscribeAsync('js/sidmark', { qos: 1, properties: { subscriptionIdentifier: 3 } });
  const pub = await t.connect({ clientId: 'js-sid-pub' });
  await pub.client.publishAsync('js/sid/a', 'both', { qos: 1 });
  await pub.client.publishAsync('js/sidmark', 'mark', { qos: 1 });
  await inbox.until((items) => items.some((m) => m.topic === 'js/sidmark'), 'marker').catch(() => {});
  const hits = inbox.items.filter((m) => m.topic === 'js/sid/a');
  const mark = inbox.items.find((m) => m.topic === 'js/sidmark');
  check('subscription identifiers: one message carrying ids 1 and 2',
    hits.length === 1 && isDeepStrictEqual(ids(hits[0].packet.properties?.subscriptionIdentifier), [1, 2]),
    trace(inbox.items.map((m) => m.packet)));
  check('subscription identifiers: a single match carries only its id',
    mark && isDeepStrictEqual(ids(mark.packet.properties?.subscriptionIdentifier), [3]),
    trace(inbox.items.map((m) => m.packet)));
}

/*
 * Request / response: the request's Response Topic, Correlation Data (not
 * UTF-8), User Properties (repeated keys, non-ASCII), Content Type and
 * Payload Format Indicator reach the responder unchanged, and the response
 * carries the correlation data back.
 */
async function requestResponse(t) {
  const request = {
    responseTopic: 'js/resp/requester-1',
    correlationData: Buffer.from([0x00, 0x01, 0xfe, 0xff, 0x80]),
    userProperties: { trace: 'abc-123', multi: ['one', 'two', 'three'], 'ключ': 'значение ✓' },
    contentType: 'application/json; charset=utf-8',
    payloadFormatIndicator: true,
  };
  const body = JSON.stringify({ op: 'ping', text: 'héllo' });
  let reqInbox;
  const responder = await t.connect({ clientId: 'js-rr-responder' }, (c) => {
    reqInbox = inboxOf(c);
    c.on('message', (topic, payload, packet) => {
      const p = packet.properties || {};
      c.publish(p.responseTopic, 'pong', {
        qos: 1, properties: { correlationData: p.correlationData, userProperties: { answer: 'yes' } },
      });
    });
  });
  await responder.client.subscribeAsync('js/req/#', { qos: 1 });
  let respInbox;
  const requester = await t.connect({ clientId: 'js-rr-requester' }, (c) => { respInbox = inboxOf(c); });
  await requester.client.subscribeAsync(request.responseTopic, { qos: 1 });
  await requester.client.publishAsync('js/req/ping', body, { qos: 1, properties: request });
  await respInbox.count(1, 'response').catch(() => {});
  const req = reqInbox.items[0];
  const got = req ? plainProps(req.packet.properties) : {};
  check('request/response: request properties arrive unchanged, user properties in order',
    req && req.payload === body && isDeepStrictEqual(got, request) &&
    isDeepStrictEqual(Object.keys(got.userProperties), Object.keys(request.userProperties)),
    JSON.stringify(got, (k, v) => (v && v.type === 'Buffer' ? `hex:${Buffer.from(v.data).toString('hex')}` : v)));
  const resp = respInbox.items[0];
  check('request/response: response carries the correlation data back',
    resp && resp.payload === 'pong' && resp.topic === request.responseTopic &&
    Buffer.isBuffer(resp.packet.properties?.correlationData) &&
    resp.packet.properties.correlationData.equals(request.correlationData) &&
    isDeepStrictEqual(plainProps(resp.packet.properties).userProperties, { answer: 'yes' }),
    resp ? trace([resp.packet]) : 'no response');
}

/*
 * Shared subscription with two members: 20 messages split between them,
 * each member gets some, none twice. A marker on a plain subscription each
 * member also holds, published after the 20, bounds the wait for strays.
 */
async function sharedSubscription(t) {
  const N = 20;
  const members = [];
  for (let i = 0; i < 2; i++) {
    let inbox;
    const m = await t.connect({ clientId: `js-share-${i}` }, (c) => { inbox = inboxOf(c); });
    await m.client.subscribeAsync('$share/g/js/sh/#', { qos: 1 });
    await m.client.subscribeAsync('js/shmark', { qos: 1 });
    members.push(inbox);
  }
  const pub = await t.connect({ clientId: 'js-share-pub' });
  for (let i = 0; i < N; i++) await pub.client.publishAsync('js/sh/x', `sh-${i}`, { qos: 1 });
  await pub.client.publishAsync('js/shmark', 'mark', { qos: 1 });
  await Promise.all(members.map((m) => m.until((items) => items.some((x) => x.topic === 'js/shmark'),
    'marker at a member'))).catch(() => {});
  const got = members.map((m) => m.items.filter((x) => x.topic === 'js/sh/x').map((x) => x.payload));
  const all = got.flat();
  check(`shared subscription: ${N} messages split over 2 members, none twice`,
    got.every((g) => g.length > 0) && all.length === N && new Set(all).size === N,
    `counts ${got.map((g) => g.length)}, unique ${new Set(all).size}`);
}

/*
 * No Local: a subscriber with nl does not get its own publish, but does get
 * another client's, published after it (so its arrival bounds the wait).
 */
async function noLocal(t) {
  let inbox;
  const a = await t.connect({ clientId: 'js-nl-a' }, (c) => { inbox = inboxOf(c); });
  await a.client.subscribeAsync('js/nl/t', { qos: 1, nl: true });
  const b = await t.connect({ clientId: 'js-nl-b' });
  await a.client.publishAsync('js/nl/t', 'own', { qos: 1 });
  await b.client.publishAsync('js/nl/t', 'other', { qos: 1 });
  await inbox.until((items) => items.some((m) => m.payload === 'other'), 'the other client\'s message')
    .catch(() => {});
  check('no local: own publish not delivered, another client\'s is',
    isDeepStrictEqual(inbox.items.map((m) => m.payload), ['other']),
    JSON.stringify(inbox.items.map((m) => m.payload)));
}

/*
 * Retain Handling and Retain As Published. rh 2 never sends retained
 * messages; rh 0 does (with RETAIN set); rh 1 only for a new subscription.
 * A live publish after each subscribe bounds the wait for a retained one.
 * For live messages, rap keeps the RETAIN flag as published; without it
 * the flag is cleared.
 */
async function retainHandling(t) {
  const pub = await t.connect({ clientId: 'js-rh-pub' });
  await pub.client.publishAsync('js/rh/t', 'kept', { qos: 1, retain: true });
  const subs = {};
  for (const [name, rh] of [['rh0', 0], ['rh1', 1], ['rh2', 2]]) {
    let inbox;
    const s = await t.connect({ clientId: `js-${name}` }, (c) => { inbox = inboxOf(c); });
    await s.client.subscribeAsync('js/rh/#', { qos: 1, rh });
    subs[name] = { client: s.client, inbox, rh };
  }
  /* rh 1 again on the same filter: no longer a new subscription. */
  await subs.rh1.client.subscribeAsync('js/rh/#', { qos: 1, rh: 1 });
  await pub.client.publishAsync('js/rh/live', 'live', { qos: 1 });
  const seen = {};
  for (const [name, s] of Object.entries(subs)) {
    await s.inbox.until((items) => items.some((m) => m.payload === 'live'), `live at ${name}`)
      .catch(() => {});
    seen[name] = s.inbox.items.map((m) => `${m.payload}${m.packet.retain ? '(r)' : ''}`);
  }
  check('retain handling 0: retained message sent on subscribe, RETAIN set',
    isDeepStrictEqual(seen.rh0, ['kept(r)', 'live']), JSON.stringify(seen.rh0));
  check('retain handling 1: sent for the new subscription only, not again on resubscribe',
    isDeepStrictEqual(seen.rh1, ['kept(r)', 'live']), JSON.stringify(seen.rh1));
  check('retain handling 2: no retained message on subscribe',
    isDeepStrictEqual(seen.rh2, ['live']), JSON.stringify(seen.rh2));

  const rap = {};
  for (const [name, flag] of [['rap1', true], ['rap0', false]]) {
    let inbox;
    const s = await t.connect({ clientId: `js-${name}` }, (c) => { inbox = inboxOf(c); });
    await s.client.subscribeAsync('js/rap/#', { qos: 1, rap: flag });
    rap[name] = inbox;
  }
  await pub.client.publishAsync('js/rap/t', 'live-retained', { qos: 1, retain: true });
  for (const inbox of Object.values(rap)) await inbox.count(1, 'retain-as-published message').catch(() => {});
  const flags = Object.fromEntries(Object.entries(rap).map(([n, i]) => [n, i.items.map((m) => m.packet.retain)]));
  check('retain as published: live retained message keeps RETAIN with rap, loses it without',
    isDeepStrictEqual(flags, { rap1: [true], rap0: [false] }), JSON.stringify(flags));
}

/*
 * Message expiry of a retained message (interval 2 s): a subscriber
 * arriving at once gets it with the remaining interval (1 or 2), one
 * arriving 3 s later does not. Each subscriber also subscribes, in a
 * second SUBSCRIBE, to a retained marker without expiry; its arrival
 * bounds the wait for the first filter's retained message.
 */
async function messageExpiry(t) {
  const pub = await t.connect({ clientId: 'js-exp-pub' });
  await pub.client.publishAsync('js/expmark', 'mark', { qos: 1, retain: true });
  await pub.client.publishAsync('js/exp/t', 'short-lived', {
    qos: 1, retain: true, properties: { messageExpiryInterval: 2 },
  });
  const storedAt = Date.now();
  const subscribe = async (clientId) => {
    let inbox;
    const s = await t.connect({ clientId }, (c) => { inbox = inboxOf(c); });
    await s.client.subscribeAsync('js/exp/t', { qos: 1 });
    await s.client.subscribeAsync('js/expmark', { qos: 1 });
    await inbox.until((items) => items.some((m) => m.topic === 'js/expmark'), `marker at ${clientId}`)
      .catch(() => {});
    return inbox.items.filter((m) => m.topic === 'js/exp/t');
  };
  const early = await subscribe('js-exp-early');
  const remaining = early[0]?.packet.properties?.messageExpiryInterval;
  check('message expiry: a subscriber at once gets the retained message, remaining interval 1..2',
    early.length === 1 && remaining >= 1 && remaining <= 2, trace(early.map((m) => m.packet)));
  /* Time is the subject here: nothing to wait on but the clock. */
  await sleep(Math.max(0, storedAt + 3000 - Date.now()));
  const late = await subscribe('js-exp-late');
  check('message expiry: a subscriber 3 s later does not get the expired retained message',
    late.length === 0, trace(late.map((m) => m.packet)));
}

/*
 * Session takeover: a second connection with the same client id ends the
 * first with DISCONNECT 0x8E (Session taken over); the second stays up.
 */
async function sessionTakeover(t) {
  const discs = new Inbox();
  const first = await t.connect({ clientId: 'js-take' }, (c) => c.on('disconnect', (p) => discs.push(p)));
  const firstClosed = once(first.client, 'close');
  const second = await t.connect({ clientId: 'js-take' });
  await discs.count(1, 'DISCONNECT to the first connection').catch(() => {});
  await withTimeout(firstClosed, TIMEOUT_MS, 'first connection closed').catch(() => {});
  check('session takeover: first connection gets DISCONNECT 0x8E',
    discs.items.length === 1 && discs.items[0].reasonCode === 0x8e, trace(discs.items));
  /* The second is still served: a round trip through the broker. */
  const inbox = inboxOf(second.client);
  await second.client.subscribeAsync('js/take/t', { qos: 1 });
  await second.client.publishAsync('js/take/t', 'still-here', { qos: 1 });
  await inbox.count(1, 'message to the second connection').catch(() => {});
  check('session takeover: the second connection stays up',
    second.client.connected && inbox.items.length === 1 && !first.client.connected,
    `second connected ${second.client.connected}, got ${inbox.items.length}`);
}

/*
 * The server's Receive Maximum, with raw frames (MQTT.js itself would hold
 * back at the limit): CONNECT, then Receive Maximum + 1 QoS 2 PUBLISHes
 * never released. The first Receive Maximum get PUBREC, the one over the
 * limit DISCONNECT 0x93 (Receive Maximum exceeded), then the socket closes.
 */
async function receiveMaximum(t, port) {
  const opts = { protocolVersion: 5 };
  const sock = net.connect(port, '127.0.0.1');
  const packets = new Inbox();
  const parser = mqttPacket.parser(opts);
  parser.on('packet', (p) => packets.push(p));
  parser.on('error', (e) => packets.push({ cmd: `parse error ${e.message}` }));
  sock.on('data', (b) => parser.parse(b));
  sock.on('error', () => {});
  const closed = once(sock, 'close');
  try {
    await withTimeout(once(sock, 'connect'), TIMEOUT_MS, 'TCP connect');
    sock.write(mqttPacket.generate({
      cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'js-rm-raw',
      keepalive: 60,
    }, opts));
    const connack = await packets.until((items) => items.find((p) => p.cmd === 'connack'), 'CONNACK');
    const max = connack.properties?.receiveMaximum ?? 65535;
    check('receive maximum: CONNACK announces one small enough to exceed (< 65535)',
      connack.reasonCode === 0 && max < 65535, trace([connack]));
    if (max >= 65535) return;
    for (let id = 1; id <= max + 1; id++) {
      sock.write(mqttPacket.generate({
        cmd: 'publish', topic: 'js/rm/x', payload: `rm-${id}`, qos: 2, messageId: id, retain: false,
        dup: false,
      }, opts));
    }
    await packets.until((items) => items.some((p) => p.cmd === 'disconnect'), 'DISCONNECT').catch(() => {});
    await withTimeout(closed, TIMEOUT_MS, 'socket closed by the server').catch(() => {});
    const recs = packets.items.filter((p) => p.cmd === 'pubrec');
    const disc = packets.items.find((p) => p.cmd === 'disconnect');
    check(`receive maximum: the first ${max} QoS 2 PUBLISHes get PUBREC`,
      recs.length === max && recs.every((p, i) => p.messageId === i + 1 && !p.reasonCode),
      `${recs.length} PUBRECs; last packets: ${trace(packets.items.slice(-3))}`);
    check('receive maximum: one more gets DISCONNECT 0x93 and the connection closes',
      disc && disc.reasonCode === 0x93 && sock.destroyed,
      `${trace(packets.items.filter((p) => p.cmd !== 'pubrec'))} destroyed ${sock.destroyed}`);
  } finally {
    sock.destroy();
  }
}

const CASES = [
  ['QoS 2 exactly once across a reconnect', qos2ExactlyOnce],
  ['QoS 1 redelivery with DUP', qos1Redelivery],
  ['broker-assigned topic aliases', brokerTopicAliases],
  ['client topic aliases', clientTopicAliases],
  ['subscription identifiers', subscriptionIdentifiers],
  ['request/response properties', requestResponse],
  ['shared subscription', sharedSubscription],
  ['no local', noLocal],
  ['retain handling and retain as published', retainHandling],
  ['message expiry', messageExpiry],
  ['session takeover', sessionTakeover],
  ['receive maximum', receiveMaximum],
];

async function main() {
  if (!BIN) {
    console.log('usage: node test_mqttjs.mjs BULWARK_BINARY');
    return 2;
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bw-mqttjs-'));
  let node;
  try {
    node = await startNode(tmp);
    console.log(`node up, mqtt port ${node.mqttPort}; MQTT.js ${mqtt.MQTTJS_VERSION}, Node.js ${process.version}`);
    for (const [name, fn] of CASES) {
      const t = new Clients(node.mqttPort);
      try {
        await withTimeout(fn(t, node.mqttPort), CASE_TIMEOUT_MS, name);
      } catch (e) {
        check(name, false, `${e.message}${t.errors.length ? ` errors: ${t.errors}` : ''}`);
      } finally {
        await t.close();
      }
    }
  } catch (e) {
    check('node started', false, e.message);
  } finally {
    if (node) {
      node.proc.kill('SIGTERM');
      const code = await withTimeout(node.exited, TIMEOUT_MS, 'node exit').catch(() => null);
      if (code === null) node.proc.kill('SIGKILL');
      check('SIGTERM stops the node with exit 0', code && code[0] === 0,
        `${JSON.stringify(code)} ${Buffer.concat(node.output).toString().slice(-2000)}`);
      if (failures.length) {
        /* The node's own account of the failed cases. */
        const text = fs.readFileSync(node.log, 'utf8');
        console.log(`--- last lines of ${node.log} ---\n${text.split('\n').slice(-40).join('\n')}`);
      }
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`${passed} passed, ${failures.length} failed`);
  return failures.length ? 1 : 0;
}

process.exitCode = await main();
/* Nothing left should hold the loop open; make sure of it. */
process.exit(process.exitCode);
