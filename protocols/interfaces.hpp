// The typed actor interface of each role and the CAF registration of every
// message type. Reading an alias tells everything that role accepts and returns.
#pragma once

#include <caf/all.hpp>
#include <string>

#include "protocols/codec.hpp"
#include "protocols/messages.hpp"

// One CAF type-ID block for everything GuardedTuning sends.
CAF_BEGIN_TYPE_ID_BLOCK(gtune, caf::first_custom_type_id)
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::SessionHello>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::SessionAccept>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::ForwardRequest>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::ForwardReply>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::BackwardRequest>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::BackwardReply>))
CAF_ADD_TYPE_ID(gtune, (gt::Encoded<gt::SessionBye>))
CAF_ADD_ATOM(gtune, gt, train_atom, "train")
CAF_END_TYPE_ID_BLOCK(gtune)

namespace gt {

// CAF serializes the encoded bytes as one blob: the codec already made them.
template <class Inspector, class T>
typename Inspector::result_type inspect(Inspector& f, Encoded<T>& x) {
  return f(caf::meta::type_name(message_kind<T>()), x.bytes);
}

// The server (model owner): serves forward and backward passes per client session.
using server_actor =
    caf::typed_actor<caf::replies_to<Encoded<SessionHello>>::with<Encoded<SessionAccept>>,
                     caf::replies_to<Encoded<ForwardRequest>>::with<Encoded<ForwardReply>>,
                     caf::replies_to<Encoded<BackwardRequest>>::with<Encoded<BackwardReply>>,
                     caf::reacts_to<Encoded<SessionBye>>>;

// The client (data owner): on `train`, runs its whole plan against its server
// and replies with the run's results as JSON. Only local parties talk to it.
using client_actor = caf::typed_actor<caf::replies_to<train_atom>::with<std::string>>;

// Errors a party sends back instead of a reply.
enum class wire_errc : uint8_t {
  rejected = 1,  // the message failed validation (ProtocolError); the reason is attached
  internal = 2,  // the receiver failed while handling a valid message
};
caf::error make_wire_error(wire_errc code, std::string reason);
// "rejected: <reason>" for errors made by make_wire_error, CAF's rendering otherwise.
std::string describe(const caf::error& err);

// Registers every message type above; call on each actor_system_config.
void register_protocol(caf::actor_system_config& cfg);

}  // namespace gt
