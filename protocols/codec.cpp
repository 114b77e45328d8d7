// cereal (portable binary) serialization of the messages in messages.hpp. Every
// length read from the wire is checked against the bytes that remain before
// anything is allocated, so a hostile length cannot exhaust memory.
#include "protocols/codec.hpp"

#include <cereal/archives/portable_binary.hpp>
#include <istream>
#include <ostream>
#include <type_traits>

#include "protocols/messages.hpp"

namespace gt {
namespace {

// A write-only streambuf: a counting pass (no storage) sizes the buffer, then
// the writing pass appends straight into the message's bytes. An ostringstream
// instead grew by doubling and was copied twice more (str(), then the vector):
// 28-40 payload copies' worth of time for an activation (bench/bench_codec).
struct ByteSink : std::streambuf {
  std::vector<uint8_t>* out = nullptr;  // null: only count
  size_t count = 0;

  std::streamsize xsputn(const char* s, std::streamsize n) override {
    if (out) out->insert(out->end(), s, s + n);
    count += static_cast<size_t>(n);
    return n;
  }
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    const char ch = traits_type::to_char_type(c);
    xsputn(&ch, 1);
    return c;
  }
};

// A read-only streambuf over the encoded bytes (no copy).
struct ByteSource : std::streambuf {
  ByteSource(const uint8_t* data, size_t size) {
    auto* p = reinterpret_cast<char*>(const_cast<uint8_t*>(data));
    setg(p, p, p + size);
  }
  size_t remaining() const { return static_cast<size_t>(egptr() - gptr()); }
  // The next n bytes, consumed (n <= remaining()).
  const uint8_t* take(size_t n) {
    char* p = gptr();
    setg(eback(), p + n, egptr());
    return reinterpret_cast<const uint8_t*>(p);
  }
};

struct Reader {
  cereal::PortableBinaryInputArchive& ar;
  ByteSource& src;

  template <class T>
  void scalar(T& x) {
    if (src.remaining() < sizeof(T)) throw ProtocolError("message truncated");
    if constexpr (std::is_same_v<T, bool>) {
      uint8_t byte = 0;  // a bool must be 0 or 1: any other byte is a forged message
      ar(byte);
      if (byte > 1) throw ProtocolError("boolean field holds " + std::to_string(byte));
      x = byte == 1;
    } else {
      ar(x);
    }
  }
  uint64_t length(size_t elem_size) {
    uint64_t n = 0;
    scalar(n);
    if (elem_size && n > src.remaining() / elem_size)
      throw ProtocolError("declared length " + std::to_string(n) + " exceeds the message");
    return n;
  }
  // A count of entries, each at least min_entry_bytes on the wire.
  uint64_t count(uint64_t /*unused*/, size_t min_entry_bytes) { return length(min_entry_bytes); }
  template <class T>
  void vec(std::vector<T>& v) {
    const auto n = length(sizeof(T));
    if constexpr (sizeof(T) == 1) {  // bytes have no byte order: one copy, no zero-fill first
      const auto* p = src.take(n);
      v.assign(p, p + n);
    } else {
      v.resize(n);
      if (!v.empty()) ar(cereal::binary_data(v.data(), v.size() * sizeof(T)));
    }
  }
  void str(std::string& s) {
    s.resize(length(1));
    if (!s.empty()) ar(cereal::binary_data(&s[0], s.size()));
  }
};

struct Writer {
  cereal::PortableBinaryOutputArchive& ar;
  template <class T>
  void scalar(const T& x) {
    ar(x);
  }
  uint64_t count(uint64_t n, size_t /*unused*/) {
    ar(n);
    return n;
  }
  template <class T>
  void vec(const std::vector<T>& v) {
    ar(static_cast<uint64_t>(v.size()));
    if (!v.empty()) ar(cereal::binary_data(v.data(), v.size() * sizeof(T)));
  }
  void str(const std::string& s) {
    ar(static_cast<uint64_t>(s.size()));
    if (!s.empty()) ar(cereal::binary_data(s.data(), s.size()));
  }
};

// One field list per message, used for both directions (IO is Reader or Writer).
template <class IO, class H>
void fields(IO& io, H& h) {
  io.scalar(h.protocol_version);
  io.scalar(h.session);
  io.scalar(h.step);
  io.scalar(h.micro);
  io.scalar(h.micros);
  if (std::is_same_v<IO, Reader> && (h.micros == 0 || h.micro >= h.micros))
    throw ProtocolError("header: micro-batch " + std::to_string(h.micro) + " of " +
                        std::to_string(h.micros));
}

template <class IO, class W>
void tensor_fields(IO& io, W& w) {
  auto dtype = static_cast<uint8_t>(w.dtype);
  auto scheme = static_cast<uint8_t>(w.scheme);
  io.scalar(dtype);
  io.scalar(scheme);
  w.dtype = static_cast<WireDtype>(dtype);
  w.scheme = static_cast<QuantScheme>(scheme);
  io.vec(w.shape);
  io.vec(w.rows);
  io.vec(w.scale);
  io.vec(w.zero);
  io.vec(w.payload);
}

template <class IO, class M>
void body(IO& io, M& m);

template <class IO>
void body(IO& io, SessionHello& m) {
  io.str(m.client_name);
  io.str(m.strategy);
  io.str(m.model_type);
  io.scalar(m.num_layers);
  io.scalar(m.hidden_size);
  io.scalar(m.n_in);
  io.scalar(m.n_out);
  io.scalar(m.backward);
  io.scalar(m.quant_a2);
  io.scalar(m.quant_g1);
  io.scalar(m.compress);
}
template <class IO>
void body(IO& io, SessionAccept& m) {
  io.str(m.server_name);
}
template <class IO>
void body(IO& io, ForwardRequest& m) {
  tensor_fields(io, m.activations);
  tensor_fields(io, m.attention_mask);
  io.scalar(m.keep_graph);
}
template <class IO>
void body(IO& io, ForwardReply& m) {
  tensor_fields(io, m.activations);
}
template <class IO>
void body(IO& io, BackwardRequest& m) {
  tensor_fields(io, m.gradient);
}
template <class IO>
void body(IO& io, BackwardReply& m) {
  tensor_fields(io, m.gradient);
}
template <class IO>
void body(IO& io, GenerateRequest& m) {
  io.scalar(m.generation);
  tensor_fields(io, m.activations);
  tensor_fields(io, m.attention_mask);
  io.scalar(m.last);
}
template <class IO>
void body(IO& io, GenerateReply& m) {
  io.scalar(m.generation);
  tensor_fields(io, m.activations);
}
template <class IO>
void body(IO&, SessionBye&) {}
template <class IO>
void body(IO& io, DataUpload& m) {
  tensor_fields(io, m.input_ids);
  tensor_fields(io, m.attention_mask);
  tensor_fields(io, m.labels);
}

template <class IO>
void body(IO& io, AdapterUpload& m) {
  io.scalar(m.delta);
  // An entry is at least a name length, dtype, scheme and five vector lengths.
  m.tensors.resize(io.count(m.tensors.size(), 8 + 2 + 5 * 8));
  for (auto& t : m.tensors) {
    io.str(t.name);
    tensor_fields(io, t.value);
  }
}
template <class IO>
void body(IO& io, AdapterAck& m) {
  io.scalar(m.tensors);
  io.scalar(m.parameters);
}
template <class IO>
void body(IO& io, EmulatorRequest& m) {
  io.str(m.strategy);
  io.str(m.model_type);
  io.scalar(m.num_layers);
  io.scalar(m.hidden_size);
  io.scalar(m.n_in);
  io.scalar(m.n_out);
}
template <class IO>
void body(IO& io, TransferOffer& m) {
  io.str(m.transfer_id);
  io.scalar(m.total_bytes);
  io.scalar(m.chunk_bytes);
  io.str(m.sha256);
  io.str(m.description);
}
template <class IO>
void body(IO& io, ChunkRequest& m) {
  io.str(m.transfer_id);
  io.scalar(m.offset);
  io.scalar(m.length);
}
template <class IO>
void body(IO& io, ChunkReply& m) {
  io.str(m.transfer_id);
  io.scalar(m.offset);
  io.scalar(m.checksum);
  io.vec(m.data);
}

// A 4-byte tag before every message: a message of the wrong kind, or garbage, fails fast.
template <class T>
uint32_t tag() {
  uint32_t h = 2166136261u;
  for (const char* p = message_kind<T>(); *p; ++p) h = (h ^ uint8_t(*p)) * 16777619u;
  return h;
}

}  // namespace

namespace {

template <class T>
void write_message(const T& message, ByteSink& sink) {
  std::ostream os(&sink);
  cereal::PortableBinaryOutputArchive ar(os);
  Writer w{ar};
  w.scalar(tag<T>());
  auto& m = const_cast<T&>(message);  // the field lists are shared with decoding; writing
                                      // does not modify
  fields(w, m.header);
  body(w, m);
}

}  // namespace

template <class T>
Encoded<T> encode(const T& message, Compression compression) {
  ByteSink counter;
  write_message(message, counter);
  Encoded<T> encoded;
  encoded.bytes.reserve(counter.count);
  ByteSink sink;
  sink.out = &encoded.bytes;
  write_message(message, sink);
  if (compression == Compression::zstd) {  // only where it pays: a tiny message grows
    auto frame = zstd_compress(encoded.bytes);
    if (frame.size() < encoded.bytes.size()) encoded.bytes = std::move(frame);
  }
  return encoded;
}

template <class T>
T decode(const Encoded<T>& encoded, size_t max_bytes) {
  const char* kind = message_kind<T>();
  if (encoded.bytes.size() > max_bytes)
    throw ProtocolError(std::string(kind) + ": message of " + std::to_string(encoded.bytes.size()) +
                        " bytes exceeds the limit of " + std::to_string(max_bytes));
  if (is_zstd_frame(encoded.bytes)) {
    Encoded<T> plain;
    try {
      plain.bytes = zstd_decompress(encoded.bytes, max_bytes);
    } catch (const ProtocolError& e) {
      throw ProtocolError(std::string(kind) + ": " + e.what());
    }
    if (is_zstd_frame(plain.bytes))
      throw ProtocolError(std::string(kind) + ": a zstd frame inside a zstd frame");
    return decode(plain, max_bytes);
  }
  ByteSource src(encoded.bytes.data(), encoded.bytes.size());
  std::istream is(&src);
  T m;
  try {
    cereal::PortableBinaryInputArchive ar(is);
    Reader r{ar, src};
    uint32_t t = 0;
    r.scalar(t);
    if (t != tag<T>()) throw ProtocolError("not a " + std::string(kind) + " message (wrong tag)");
    fields(r, m.header);
    if (m.header.protocol_version != kProtocolVersion)
      throw ProtocolError("protocol version " + std::to_string(m.header.protocol_version) +
                          ", this party speaks " + std::to_string(kProtocolVersion));
    body(r, m);
    if (src.remaining() != 0)
      throw ProtocolError(std::to_string(src.remaining()) + " unexpected trailing bytes");
  } catch (const ProtocolError& e) {
    throw ProtocolError(std::string(kind) + ": " + e.what());
  } catch (const cereal::Exception& e) {
    throw ProtocolError(std::string(kind) + ": malformed message: " + e.what());
  }
  return m;
}

#define GT_CODEC_INSTANTIATE(T)                      \
  template Encoded<T> encode(const T&, Compression); \
  template T decode(const Encoded<T>&, size_t);
GT_CODEC_INSTANTIATE(SessionHello)
GT_CODEC_INSTANTIATE(SessionAccept)
GT_CODEC_INSTANTIATE(ForwardRequest)
GT_CODEC_INSTANTIATE(ForwardReply)
GT_CODEC_INSTANTIATE(BackwardRequest)
GT_CODEC_INSTANTIATE(BackwardReply)
GT_CODEC_INSTANTIATE(SessionBye)
GT_CODEC_INSTANTIATE(DataUpload)
GT_CODEC_INSTANTIATE(AdapterUpload)
GT_CODEC_INSTANTIATE(AdapterAck)
GT_CODEC_INSTANTIATE(EmulatorRequest)
GT_CODEC_INSTANTIATE(TransferOffer)
GT_CODEC_INSTANTIATE(ChunkRequest)
GT_CODEC_INSTANTIATE(ChunkReply)
GT_CODEC_INSTANTIATE(GenerateRequest)
GT_CODEC_INSTANTIATE(GenerateReply)
#undef GT_CODEC_INSTANTIATE

void WireStats::add(const std::string& link, const std::string& direction, const std::string& kind,
                    int64_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  Key key{link, direction, kind};
  auto& c = counts_[key];
  c.messages += 1;
  c.bytes += bytes;
  if (observer_) observer_(key, bytes);
}

void WireStats::set_observer(Observer observer) {
  std::lock_guard<std::mutex> lock(mutex_);
  observer_ = std::move(observer);
}

std::map<WireStats::Key, WireStats::Count> WireStats::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return counts_;
}

void WireStats::restore(std::map<Key, Count> counts) {
  std::lock_guard<std::mutex> lock(mutex_);
  counts_ = std::move(counts);
}

int64_t WireStats::total_bytes(const std::string& direction) const {
  std::lock_guard<std::mutex> lock(mutex_);
  int64_t n = 0;
  for (const auto& [key, c] : counts_)
    if (direction.empty() || std::get<1>(key) == direction) n += c.bytes;
  return n;
}

}  // namespace gt
