// The API's types for the page's JSDoc annotations, generated from the API
// description (docs/openapi.json) by `meshctl openapi --types-out
// src/api/page/api-types.js`; do not edit. Comments only: nothing loads it.

/**
 * @typedef {("pause" | "resume" | "reconcile")} Action
 */

/**
 * `POST /api/v1/apply`: a bundle (`revision`, `files`) and `dryRun`.
 * @typedef {object} ApplyRequest
 * @property {boolean} [dryRun]
 * @property {Array<BundleFile>} files
 * @property {string} revision
 */

/**
 * @typedef {object} ApplyResponse
 * @property {boolean} applied
 * @property {Plan} plan
 */

/**
 * @typedef {object} BundleFile
 * @property {string} path
 * @property {string} text
 */

/**
 * @typedef {object} Change
 * @property {(string | null)} [action] What this node would do, e.g. `start: ollama serve`.
 * @property {Array<string>} [fields] The spec fields (and `metadata.labels`) that differ.
 * @property {string} kind
 * @property {string} name
 * @property {Op} op
 */

/**
 * `Ready`, `Progressing` or `Degraded`, with `True`, `False` or `Unknown`.
 * The wire shape: `type` stays a string, so a client reads the status of a
 * daemon that knows more condition types than it does.
 * @typedef {object} Condition
 * @property {string} lastTransitionTime When `status` last changed (RFC 3339).
 * @property {string} message
 * @property {string} reason
 * @property {string} revision The revision the condition was computed for.
 * @property {string} status
 * @property {string} type
 */

/**
 * @typedef {({decision: "accepted", epoch: number} | {decision: "refused", reason: Reason})} Decision
 */

/**
 * @typedef {object} Describe
 * @property {Array<EventRecord>} events
 * @property {string} kind
 * @property {Array<LogLine>} logs
 * @property {string} name
 * @property {*} spec The object's spec as applied; None once it left the set.
 * @property {(ObjectStatus | null)} status
 */

/**
 * @typedef {object} DroppedMessage
 * @property {string} error
 * @property {number} index
 * @property {string} message
 */

/**
 * A message between two nodes.
 * @typedef {object} Envelope
 * @property {string} from
 * @property {HandoffProtocolMessage} message
 * @property {string} to
 */

/**
 * @typedef {object} ErrorBody
 * @property {Array<string>} [diagnostics] For a rejected bundle: every error, rendered with file:line.
 * @property {string} error
 * @property {string} message
 */

/**
 * An [`Event`] as the log keeps it: when, and about which object.
 * @typedef {object} EventRecord
 * @property {string} message
 * @property {string} object `Kind/name`, or empty for the node as a whole.
 * @property {string} reason
 * @property {string} time
 * @property {string} type The event's [`Severity`](crate::event::Severity): `Normal` or `Warning`.
 */

/**
 * `POST /mesh/goodbye`: a peer says it is about to sleep, or that it woke.
 * `node` must be the caller, a peer of the node it tells.
 * @typedef {object} Goodbye
 * @property {string} node
 * @property {PowerState} state
 */

/**
 * The answer to `POST /api/v1/handoff/messages`: how many messages were
 * taken, and the ones dropped (by their index in the batch), with why.
 * @typedef {object} HandoffBatch
 * @property {Array<DroppedMessage>} dropped
 * @property {number} taken
 */

/**
 * Names one handoff attempt; a retry of the same attempt reuses it.
 * @typedef {string} HandoffId
 */

/**
 * `POST /api/v1/handoff/message`: one protocol message between the two
 * controllers, about one conversation of one HandoffPolicy. Unknown fields
 * are ignored, so nodes one release apart still talk.
 * @typedef {object} HandoffMessage
 * @property {string} conversation
 * @property {Envelope} envelope
 * @property {(string | null)} [hash] The sender's content hash of the conversation folder, when it has one: what `inSync` compares.
 * @property {string} policy
 * @property {number} [protocol] [`HANDOFF_PROTOCOL`] of the sender; a message without it is from a release before the field, which spoke version 1.
 */

/**
 * How one handoff started on this node goes, for `meshctl handoff` to follow
 * (the API shows it as `wire::HandoffProgress`). Kept in `<state dir>/handoff-progress.json`,
 * so that a follower of a handoff whose daemon restarted learns how it ended.
 * @typedef {object} HandoffProgress
 * @property {string} conversation
 * @property {boolean} done
 * @property {number} epoch
 * @property {(string | null)} [failedStep] The step that failed: `freeze`, `barrier`, `accept` or `release`.
 * @property {string} handoff
 * @property {Array<string>} lines What happened so far, one line per step.
 * @property {(string | null)} [message] The outcome in words.
 * @property {string} owner Who owns the conversation now, at which epoch.
 * @property {string} policy
 * @property {boolean} succeeded
 * @property {string} target
 * @property {number} timeoutMs How long the handoff may take, in milliseconds.
 */

/**
 * @typedef {({epoch: number, handoff: HandoffId, type: "accept"} | {epoch: number, handoff: HandoffId, type: "accepted"} | {handoff: HandoffId, reason: Reason, type: "refused"} | {handoff: HandoffId, type: "abort"} | {handoff: HandoffId, type: "abortAcked"} | {record: Record, type: "recordOf"} | {epoch: number, type: "prepare"} | {epoch: number, type: "promised"} | {epoch: number, reason: Reason, type: "promiseRefused"})} HandoffProtocolMessage
 */

/**
 * `POST /api/v1/handoff`: hand conversation `id` to `to` (by default the
 * policy's `defaultTarget`, else the other node), or take it over (`force`).
 * @typedef {object} HandoffRequest
 * @property {boolean} [force]
 * @property {string} id
 * @property {(string | null)} [timeout] A duration (`30s`); by default the policy's `timeout`.
 * @property {(string | null)} [to]
 */

/**
 * @typedef {object} Health
 * @property {string} apiVersion
 * @property {string} commit The commit the daemon was built from; "unknown" from nodes of earlier versions, which lack it.
 * @property {string} node
 * @property {Object<string, string>} [placements] Which node this node has each capability served by now (capability -> node; told to callers with the key): a peer that sees it change decides again at once, so nodes agree within a probe.
 * @property {(string | null)} revision
 * @property {(Role | null)} role
 * @property {(SourceStatus | null)} [source] What the node follows; peers show it while the node is offline. Absent from nodes of earlier versions. Boxed: the answer is mostly small.
 * @property {number} uptimeSeconds
 * @property {string} version
 */

/**
 * What a client of the event stream may ask: `{"action": "pause"}`.
 * @typedef {object} Intervention
 * @property {Action} action
 */

/**
 * One line a Service wrote.
 * @typedef {object} LogLine
 * @property {string} line
 * @property {string} stream
 */

/**
 * One node in `GET /api/v1/mesh`: this node's view of it.
 * @typedef {object} MeshNode
 * @property {string} address
 * @property {number} apiPort
 * @property {(string | null)} apiVersion
 * @property {(string | null)} [asleepSince] When it said it was going to sleep (RFC 3339), until it woke.
 * @property {boolean} compatible False when it speaks another API version than this node.
 * @property {string} dial Where this node calls it (`host:port`): the tailnet IP when known.
 * @property {boolean} knownDown Whether it was probed and did not answer: known to be down, not just not probed yet.
 * @property {(string | null)} lastError Why its last probe failed, while it is offline.
 * @property {(string | null)} lastSeen
 * @property {string} name
 * @property {boolean} online
 * @property {(string | null)} revision
 * @property {string} role
 * @property {(number | null)} rttMs
 * @property {(SourceStatus | null)} [source] What it follows, as it last said.
 * @property {boolean} thisNode
 * @property {(string | null)} unreachableSince When it stopped answering (RFC 3339), while it is known to be down.
 * @property {(string | null)} version
 */

/**
 * One node of [`MeshStatus`].
 * @typedef {object} MeshNodeStatus
 * @property {NodeStatus} status Its own `GET /api/v1/status`; for a node that did not answer, its last known state from the view, offline and with no objects.
 * @property {(string | null)} [unanswered] Why it did not answer (not asked while known to be down, no answer in time, refused…); absent when it answered.
 * @property {MeshNode} view This node's view of it, as in `GET /api/v1/mesh`.
 */

/**
 * `GET /api/v1/mesh/status`: every node's status, as this node gathered it.
 * @typedef {object} MeshStatus
 * @property {Array<MeshNodeStatus>} nodes This node first, then each peer in the order of `GET /api/v1/mesh`.
 */

/**
 * A node's entry in `status -o json`.
 * @typedef {object} NodeStatus
 * @property {(string | null)} lastError A rejected snapshot's errors, one per line with file:line; null when the last snapshot was applied.
 * @property {(string | null)} lastSeen
 * @property {string} name
 * @property {Array<ObjectStatus>} objects
 * @property {boolean} online
 * @property {boolean} [paused] Whether reconciles are paused from the event stream. An addition to the stable shape, present only while true, so the usual document is exactly design section 5's.
 * @property {(string | null)} revision
 * @property {string} role
 * @property {(SourceStatus | null)} [source] Where its manifests come from and how the last fetch went. Absent only for a node of an earlier version.
 * @property {(string | null)} [unreachableSince] When the node asked stopped seeing it answer (RFC 3339): present only for a peer it knows to be down.
 */

/**
 * @typedef {object} ObjectStatus
 * @property {Array<Condition>} conditions
 * @property {Object<string, string>} [details] Facts worth showing in `describe` (pid, restarts, last exit…).
 * @property {string} kind
 * @property {string} name
 * @property {boolean} ready
 */

/**
 * An error of the Ollama proxy's own, in Ollama's shape, which Ollama
 * clients show.
 * @typedef {object} OllamaError
 * @property {string} error
 */

/**
 * @typedef {(("add" | "change" | "remove") | "act")} Op
 */

/**
 * `POST /api/v1/peers`'s answer.
 * @typedef {object} PeerRegistered
 * @property {string} node The node that took the registration.
 */

/**
 * `POST /api/v1/peers`: a node that joins the mesh (`meshctl init --join`)
 * says where its API answers; the node it joins probes it until its
 * manifests declare a Node of that name.
 * @typedef {object} PeerRegistration
 * @property {string} address A host name or IP the node that takes it can dial.
 * @property {number} apiPort
 * @property {string} name
 * @property {(Role | null)} [role] `primary` or `satellite`.
 */

/**
 * @typedef {({state: "owned"} | {handoff: HandoffId, stage: Stage, state: "frozen", target: string} | {epoch: number, state: "forcing", waiting: Array<string>})} Phase
 */

/**
 * The plan of a candidate set on one node, as `diff` and `apply --dry-run`
 * show it (made by `reconcile::plan`).
 * @typedef {object} Plan
 * @property {Array<Change>} changes
 * @property {(string | null)} fromRevision
 * @property {string} node
 * @property {string} toRevision
 * @property {number} unchanged Objects present in both sets with the same content.
 */

/**
 * What a [`Goodbye`] says.
 * @typedef {("asleep" | "awake")} PowerState
 */

/**
 * Why a handoff did not happen, for the peer, the agent and `meshctl`.
 * @typedef {({known: number, reason: "staleEpoch"} | {reason: "ownerMismatch"} | {reason: "aborted"} | {reason: "barrierFailed"} | {reason: "timedOut"} | {reason: "unreachable"} | {reason: "restarted"} | {epoch: number, owner: string, reason: "notOwner"} | {handoff: HandoffId, reason: "busy"} | {reason: "sameNode"} | {reason: "unknownConversation"} | {reason: "other"})} Reason
 */

/**
 * @typedef {object} ReconcileRequest
 * @property {(string | null)} [revision] Wait until this revision is in force (fetching it first with a Git source).
 */

/**
 * @typedef {object} ReconcileResponse
 * @property {(string | null)} revision
 * @property {boolean} scheduled
 */

/**
 * What a node knows of one conversation's ownership: persisted (atomically) in
 * its state folder and sent to the peer as `RecordOf`.
 * @typedef {object} Record
 * @property {Object<string, Decision>} [decisions] What this node decided, as a target, for each handoff offered to it. Never changed once written: that makes retries idempotent and refuses a late `Accept` after an `Abort`.
 * @property {number} epoch
 * @property {string} owner
 * @property {Phase} phase This node's part in a handoff it started; `Frozen` only on the owner.
 * @property {number} [promised] The highest epoch this node promised a forced takeover: it owns nothing at or below it by a handoff, and offers nothing below it.
 */

/**
 * @typedef {("primary" | "satellite")} Role
 */

/**
 * `POST /mesh/route` as the API reads it. Unknown fields are refused: a
 * caller writing `prefer_node` must hear about it, not have it ignored.
 * @typedef {object} RouteRequest
 * @property {string} capability
 * @property {*} payload
 * @property {(string | null)} [preferNode]
 */

/**
 * A call's answer, and the JSON answer of `POST /mesh/route`.
 * @typedef {object} Routed
 * @property {*} body The endpoint's answer: its JSON, or its text as a JSON string when it is not JSON.
 * @property {string} node The node whose endpoint answered.
 * @property {number} status The endpoint's HTTP status.
 * @property {(WakeWait | null)} [wake] Present when the call waited for a wake of the node it would rather use.
 */

/**
 * `GET /api/v1/sessions[/ID]`: one conversation as this node sees it.
 * @typedef {object} Session
 * @property {Array<string>} conflicts Syncthing's conflict copies in the folder, relative paths.
 * @property {(number | null)} epoch
 * @property {number} files
 * @property {(string | null)} [handoff] The handoff under way while the conversation is frozen here (its progress: `GET /api/v1/handoff/{handoff}` on this node, which started it).
 * @property {(string | null)} hash The content hash of the folder here; None when it is not (yet) here.
 * @property {Array<string>} holders The nodes that hold the owner's content, by name, this one included when it does; empty while that is not known here.
 * @property {string} id
 * @property {boolean} inSync Every other node of the folder reported the same content as here.
 * @property {(string | null)} owner None while no node has claimed it (as far as this node knows).
 * @property {string} path The conversation folder on this node.
 * @property {(string | null)} peerHash The hash the first other node of the folder (by name) last reported: the peer, with two nodes.
 * @property {string} phase `owned`, `frozen` (handing over) or `unclaimed`.
 * @property {string} policy
 * @property {Array<string>} stale Writes from a node that did not own the conversation, kept aside by the owner as `<file>.stale-<epoch>`, relative paths.
 * @property {(string | null)} [target] The node it is being handed to, while frozen.
 * @property {boolean} writable The agent on this node may write to it now: owned here, not frozen for a handoff. A write anywhere else is stale and is kept aside.
 */

/**
 * Which kind of source a node follows.
 * @typedef {("folder" | "git")} SourceKind
 */

/**
 * A node's source and its last reading, in the shape of `status -o json`.
 * @typedef {object} SourceStatus
 * @property {(string | null)} [branch]
 * @property {(string | null)} lastFetchError Why the last fetch failed; null once one succeeds. A rejected snapshot is the node's `lastError`, not this.
 * @property {(string | null)} lastFetched When the source was last read successfully (RFC 3339).
 * @property {string} path The manifests folder: on disk for a folder, inside the repository for Git.
 * @property {(string | null)} [remote] The Git remote, without a password or token.
 * @property {(string | null)} revision The revision last read from the source (the commit fetched, or the folder's revision); the node's own `revision` is the one in force.
 * @property {SourceKind} type
 */

/**
 * @typedef {("barrier" | "accepting" | "aborting")} Stage
 */

/**
 * One message of the event stream, `GET /api/v1/events`, sent as a JSON text
 * frame tagged by `type`.
 * @typedef {({eventType: string, message: string, object: string, reason: string, time: string, type: "event"} | {line: string, service: string, stream: string, type: "log"} | {type: "live"} | {skipped: number, type: "lagged"} | {action: Action, type: "ack"} | {message: string, type: "error"})} StreamMessage
 */

/**
 * `GET /api/v1/syncthing/device`: this node's Syncthing device, so peers pair
 * with it without anyone copying an ID.
 * @typedef {object} SyncthingDevice
 * @property {string} deviceAddress What peers dial: `tcp://host:port`, or `dynamic`.
 * @property {string} deviceId
 * @property {string} node
 */

/**
 * `GET /ui/authority`: whether the caller's requests may act (issue #21:
 * the page's actions need the key). False for a browser let in by its
 * Tailscale identity alone: the page asks it for the key on confirming.
 * @typedef {object} UiAuthority
 * @property {boolean} mayAct
 */

/**
 * A session the page was given: the cookie carries it, this says how long.
 * @typedef {object} UiSessionGranted
 * @property {number} expiresInSeconds
 */

/**
 * What `POST /ui/session` trades for a session cookie: the key (or send it
 * as `Authorization: Bearer`), or a one-time ticket from `POST /ui/ticket`.
 * @typedef {object} UiSessionRequest
 * @property {(string | null)} [key]
 * @property {(string | null)} [ticket]
 */

/**
 * A one-time ticket for the page (`meshctl ui` puts it in the URL fragment).
 * @typedef {object} UiTicket
 * @property {number} expiresInSeconds
 * @property {string} ticket
 */

/**
 * A call's wait for a Wake-on-LAN: the node woken, how the wake went out
 * (`LAN`, `Tailscale peer lan-box`), how long the call waited and whether
 * the node answered within its `timeout` (else the call went on without it).
 * @typedef {object} WakeWait
 * @property {boolean} answered
 * @property {string} node
 * @property {string} via
 * @property {number} waitedMs
 */

export {};
