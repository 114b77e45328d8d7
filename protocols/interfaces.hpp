// The typed actor interface of each role and the CAF registration of every
// message type. Reading an alias tells everything that role accepts and returns.
#pragma once

#include <caf/all.hpp>
#include <string>

#include "protocols/codec.hpp"
#include "protocols/messages.hpp"
#include "protocols/scheduling.hpp"

// One CAF type-ID block for everything GuardedTuning sends.
CAF_BEGIN_TYPE_ID_BLOCK(gtune, caf::first_custom_type_id)
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::SessionHello>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::SessionAccept>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::ForwardRequest>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::ForwardReply>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::BackwardRequest>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::BackwardReply>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::SessionBye>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::AdapterUpload>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::AdapterAck>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::EmulatorRequest>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::TransferOffer>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::ChunkRequest>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::ChunkReply>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::GenerateRequest>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::GenerateReply>))
CAF_ADD_TYPE_ID(gtune, (gt::PhaseOrder))
CAF_ADD_TYPE_ID(gtune, (gt::StepReport))
CAF_ADD_TYPE_ID(gtune, (gt::AuditTruth))
CAF_ADD_TYPE_ID(gtune, (gt::AttackAlarm))
CAF_ADD_ATOM(gtune, gt, run_atom, "run")
CAF_ADD_ATOM(gtune, gt, finish_atom, "finish")
CAF_ADD_ATOM(gtune, gt, status_atom, "status")
CAF_ADD_ATOM(gtune, gt, switch_atom, "switch")
CAF_ADD_ATOM(gtune, gt, pause_atom, "pause")
CAF_ADD_ATOM(gtune, gt, resume_atom, "resume")
CAF_ADD_ATOM(gtune, gt, adapters_atom, "adapters")
CAF_ADD_ATOM(gtune, gt, tap_atom, "tap")
CAF_ADD_ATOM(gtune, gt, report_atom, "report")
CAF_ADD_ATOM(gtune, gt, watch_atom, "watch")
CAF_ADD_ATOM(gtune, gt, sweep_atom, "sweep")
CAF_ADD_ATOM(gtune, gt, reconnect_atom, "reconnect")
CAF_ADD_ATOM(gtune, gt, join_atom, "join")
CAF_ADD_ATOM(gtune, gt, deadline_atom, "deadline")
CAF_END_TYPE_ID_BLOCK(gtune)

namespace gt {

// CAF serializes the encoded bytes as one blob: the codec already made them.
template <class Inspector, class T>
typename Inspector::result_type inspect(Inspector& f, Encoded<T>& x) {
  return f(caf::meta::type_name(message_kind<T>()), x.bytes);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, PhaseOrder& x) {
  return f(caf::meta::type_name("phase_order"), x.index, x.strategy, x.steps);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StepReport& x) {
  return f(caf::meta::type_name("step_report"), x.client, x.strategy, x.phase, x.step, x.loss,
           x.bytes_up, x.bytes_down);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, AttackAlarm& x) {
  return f(caf::meta::type_name("attack_alarm"), x.attack, x.strategy, x.rouge_l);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, AuditTruth& x) {
  return f(caf::meta::type_name("audit_truth"), x.client, x.step, x.rows, x.cols, x.input_ids,
           x.attention_mask);
}

// The server (model owner): serves forward and backward passes per client
// session, runs the backbone's steps of a generation with the tuned model (a KV cache per
// generation), and plugs adapters tuned offline into the full model. A hello that
// names an open session of the same client updates that session's terms.
// `sweep` is its own timer: it drops sessions idle past the timeout.
using server_actor =
    caf::typed_actor<caf::replies_to<Encoded<SessionHello>>::with<Encoded<SessionAccept>>,
                     caf::replies_to<Encoded<ForwardRequest>>::with<Encoded<ForwardReply>>,
                     caf::replies_to<Encoded<BackwardRequest>>::with<Encoded<BackwardReply>>,
                     caf::replies_to<Encoded<AdapterUpload>>::with<Encoded<AdapterAck>>,
                     caf::replies_to<Encoded<GenerateRequest>>::with<Encoded<GenerateReply>>,
                     caf::reacts_to<Encoded<SessionBye>>, caf::reacts_to<sweep_atom>>;

// The emulator builder (model owner): builds an emulator of the backbone for
// an offline strategy and ships it in checksummed chunks a client can resume.
using emulator_builder_actor =
    caf::typed_actor<caf::replies_to<Encoded<EmulatorRequest>>::with<Encoded<TransferOffer>>,
                     caf::replies_to<Encoded<ChunkRequest>>::with<Encoded<ChunkReply>>>;

// The client (data owner), driven by its scheduler: runs a phase and replies
// with the phase's results as JSON; `finish` ends the session and replies with
// the whole run's JSON. `adapters` reads or (with a value) replaces its
// adapters (FedAvg). Only its scheduler talks to it.
using client_actor =
    caf::typed_actor<caf::replies_to<PhaseOrder>::with<std::string>,
                     caf::replies_to<finish_atom>::with<std::string>,
                     caf::replies_to<status_atom>::with<std::string>,
                     caf::replies_to<adapters_atom>::with<Encoded<AdapterUpload>>,
                     caf::replies_to<adapters_atom, Encoded<AdapterUpload>>::with<bool>>;

// The scheduler (operator): runs the plan over its clients and replies with
// the run's results; serves status (JSON) and switch/pause/resume (replies ""
// when accepted, else the reason). Every client reports each step and waits
// for the reply, its directive: "" (go on) or "switch:<strategy>"; a paused
// client's reply waits for resume. So operator commands and policies act at
// step boundaries, deterministically.
// A client in another process joins with its actor, its name and its FedAvg weight (training
// samples); the reply is "" when accepted, else the reason (a name taken, the plan running, all
// clients there). A lost client may join again under its name: it gets the order in flight
// again. `deadline` is its own timer: a lost client that has not come back fails the run.
using scheduler_actor = caf::typed_actor<
    caf::replies_to<run_atom>::with<std::string>, caf::replies_to<status_atom>::with<std::string>,
    caf::replies_to<switch_atom, std::string>::with<std::string>,
    caf::replies_to<pause_atom>::with<std::string>, caf::replies_to<resume_atom>::with<std::string>,
    caf::replies_to<StepReport>::with<std::string>, caf::reacts_to<AttackAlarm>,
    caf::replies_to<join_atom, client_actor, std::string, double>::with<std::string>,
    caf::reacts_to<deadline_atom, std::string, uint64_t>>;

// The attacker (the model owner, curious): gets a copy of what the server
// receives (and the a2 it computes), never sends anything to a client; in a
// simulation or audit the clients' truths let it score its reconstructions.
// `report` replies with the scores as JSON; `watch` names a scheduler to
// alarm with every new score (a live policy).
using attacker_actor =
    caf::typed_actor<caf::reacts_to<tap_atom, Encoded<SessionHello>, Encoded<SessionAccept>>,
                     caf::reacts_to<tap_atom, Encoded<ForwardRequest>, Encoded<ForwardReply>>,
                     caf::reacts_to<tap_atom, Encoded<BackwardRequest>>, caf::reacts_to<AuditTruth>,
                     caf::replies_to<report_atom>::with<std::string>,
                     caf::reacts_to<watch_atom, scheduler_actor>>;

// Errors a party sends back instead of a reply.
enum class wire_errc : uint8_t {
  rejected = 1,  // the message failed validation (ProtocolError); the reason is attached
  internal = 2,  // the receiver failed while handling a valid message
};
caf::error make_wire_error(wire_errc code, std::string reason);
// "rejected: <reason>" for errors made by make_wire_error, CAF's rendering otherwise.
std::string describe(const caf::error& err);
// Whether a party answered with this error (make_wire_error), rather than CAF reporting a lost
// peer, a timeout or a broken connection.
bool is_wire_error(const caf::error& err);
// The reason alone (no "failed: " / "rejected: ") of a wire error; describe() otherwise.
// For passing a party's error on without stacking prefixes.
std::string reason_of(const caf::error& err);

// Why a monitored party went down, in words: "its connection closed (...)" for a peer in
// another process that died or became unreachable, describe() otherwise.
std::string describe_exit(const caf::error& reason);

// Registers every message type above; call on each actor_system_config.
void register_protocol(caf::actor_system_config& cfg);

}  // namespace gt
