// Every message type the codec instantiates (protocols/codec.cpp), and every
// WireTensor inside a message: shared by fuzz_codec and the seed generator so
// that a new message type is one line here.
#pragma once

#include <type_traits>
#include <vector>

#include "protocols/messages.hpp"

namespace gt::fuzz {

template <class... T>
struct TypeList {
  static constexpr size_t size = sizeof...(T);
};

using AllMessages =
    TypeList<SessionHello, SessionAccept, ForwardRequest, ForwardReply, BackwardRequest,
             BackwardReply, SessionBye, DataUpload, AdapterUpload, AdapterAck, EmulatorRequest,
             TransferOffer, ChunkRequest, ChunkReply, GenerateRequest, GenerateReply>;

// Calls f(T{}) for every message type, in AllMessages order.
template <class F, class... T>
void for_each_message(TypeList<T...>, F&& f) {
  (f(T{}), ...);
}
template <class F>
void for_each_message(F&& f) {
  for_each_message(AllMessages{}, f);
}

// The tensors a message carries, in field order (empty for messages without tensors).
template <class M>
std::vector<const WireTensor*> tensors_of(const M& m) {
  if constexpr (std::is_same_v<M, ForwardRequest>) {
    return {&m.activations, &m.attention_mask};
  } else if constexpr (std::is_same_v<M, ForwardReply>) {
    return {&m.activations};
  } else if constexpr (std::is_same_v<M, BackwardRequest> || std::is_same_v<M, BackwardReply>) {
    return {&m.gradient};
  } else if constexpr (std::is_same_v<M, DataUpload>) {
    return {&m.input_ids, &m.attention_mask, &m.labels};
  } else if constexpr (std::is_same_v<M, AdapterUpload>) {
    std::vector<const WireTensor*> out;
    for (const auto& t : m.tensors) out.push_back(&t.value);
    return out;
  } else {
    return {};
  }
}

}  // namespace gt::fuzz
