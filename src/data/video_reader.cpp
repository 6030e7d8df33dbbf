// Video decoding through FFmpeg, from a file or from memory (custom I/O),
// with every corruption check of docs/RELIABILITY.md. Over 500 lines because
// FFmpeg's demux/decode/scale state machine and its error paths belong
// together in one reader.
#include "cakes/data/video_reader.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/stack.h>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace cakes::data {
namespace {

std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof(buf));
  return buf;
}

// FFmpeg logs to stderr by default; a library reports through exceptions.
void quiet_ffmpeg() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_level(AV_LOG_QUIET); });
}

// Without a container index, seek only when the gap is longer than a typical
// GOP; decoding a few dozen frames is cheaper than a seek that lands before us.
constexpr int64_t kUnindexedSeekGap = 64;

// Bytes of a file held in memory, read by FFmpeg through custom I/O.
struct MemoryFile {
  std::vector<uint8_t> bytes;
  int64_t pos = 0;

  static int read(void* opaque, uint8_t* buf, int size) {
    auto* m = static_cast<MemoryFile*>(opaque);
    const int64_t left = int64_t(m->bytes.size()) - m->pos;
    if (left <= 0) {
      return AVERROR_EOF;
    }
    const int n = static_cast<int>(std::min<int64_t>(size, left));
    std::memcpy(buf, m->bytes.data() + m->pos, size_t(n));
    m->pos += n;
    return n;
  }
  static int64_t seek(void* opaque, int64_t offset, int whence) {
    auto* m = static_cast<MemoryFile*>(opaque);
    const int64_t size = int64_t(m->bytes.size());
    int64_t base = 0;
    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE:
      return size;
    case SEEK_SET:
      base = 0;
      break;
    case SEEK_CUR:
      base = m->pos;
      break;
    case SEEK_END:
      base = size;
      break;
    default:
      return AVERROR(EINVAL);
    }
    if (offset > size || offset < -size || base + offset < 0 ||
        base + offset > size) {
      return AVERROR(EINVAL);
    }
    m->pos = base + offset;
    return m->pos;
  }
};

// A file in memory must not make a demuxer (HLS, concat, ...) open others.
int refuse_nested_open(
    AVFormatContext*, AVIOContext**, const char*, int, AVDictionary**) {
  return AVERROR(EPERM);
}

} // namespace

struct VideoReader::Impl {
  std::string path;
  AVFormatContext* fmt = nullptr;
  AVCodecContext* ctx = nullptr;
  AVFrame* frame = nullptr; // the current frame
  AVFrame* next = nullptr;  // decoder output; receiving unrefs it, even at EOF
  AVPacket* pkt = nullptr;
  SwsContext* sws = nullptr;
  AVStream* st = nullptr;
  std::unique_ptr<MemoryFile> memory; // set when reading from memory
  AVIOContext* avio = nullptr;        // its FFmpeg I/O context
  int si = -1;
  double fps = 0.0;
  int64_t start_ts = 0; // stream time base
  int64_t count = 0;
  // The container's index lists every packet of the stream up front
  // (mp4/mov), so reaching the end of the file before its last entry means
  // the file is truncated. (An AVI's count includes dropped frames, which
  // have no packet, and its index sits at the end.)
  bool index_is_complete = false;
  int width = 0, height = 0; // output frame size
  int64_t short_side = 0;

  bool draining = false; // EOF reached, decoder flushed with a null packet
  bool have_cur = false; // `frame` holds a decoded frame
  int64_t pos = -1;      // index of the frame in `frame`; -1 at stream start
  int64_t seq = 0; // frames decoded since the start (for frames without pts)
  int64_t last_dts = AV_NOPTS_VALUE; // of the stream's last packet read
  bool seekable = true;
  int64_t decoded = 0;

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error(path + ": " + what);
  }

  ~Impl() {
    sws_freeContext(sws);
    av_packet_free(&pkt);
    av_frame_free(&next);
    av_frame_free(&frame);
    avcodec_free_context(&ctx);
    avformat_close_input(&fmt);
    if (avio != nullptr) {
      av_freep(&avio->buffer);
      avio_context_free(&avio);
    }
  }

  void open() {
    quiet_ffmpeg();
    AVDictionary* options = nullptr;
    int r = 0;
    if (memory) {
      constexpr int kBuffer = 1 << 16;
      auto* buffer = static_cast<uint8_t*>(av_malloc(kBuffer));
      fmt = avformat_alloc_context();
      if (buffer != nullptr) {
        avio = avio_alloc_context(
            buffer,
            kBuffer,
            /*write_flag=*/0,
            memory.get(),
            &MemoryFile::read,
            nullptr,
            &MemoryFile::seek);
      }
      if (avio == nullptr || fmt == nullptr) {
        av_free(buffer);
        fail("out of memory opening the video");
      }
      fmt->pb = avio;
      fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
      fmt->io_open = refuse_nested_open;
    } else {
      // Read local files only: a playlist among the videos must not fetch
      // URLs.
      av_dict_set(&options, "protocol_whitelist", "file", 0);
    }
    r = avformat_open_input(
        &fmt, memory ? "" : path.c_str(), nullptr, &options);
    av_dict_free(&options);
    if (r < 0) {
      fail("cannot open video: " + av_error(r));
    }
    // A still image (a JPEG renamed .mp4) opens as a one-frame "video" of
    // unknown length: say what it is instead.
    const std::string format = fmt->iformat->name;
    if (format == "image2" ||
        (format.size() > 5 &&
         format.compare(format.size() - 5, 5, "_pipe") == 0)) {
      fail("is a still image (FFmpeg reads it as " + format + "), not a video");
    }
    r = avformat_find_stream_info(fmt, nullptr);
    if (r < 0) {
      fail("cannot read stream information: " + av_error(r));
    }
    const AVCodec* codec = nullptr;
    si = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (si < 0 || codec == nullptr) {
      fail("no decodable video stream");
    }
    st = fmt->streams[si];
    ctx = avcodec_alloc_context3(codec);
    frame = av_frame_alloc();
    next = av_frame_alloc();
    pkt = av_packet_alloc();
    if (!ctx || !frame || !next || !pkt) {
      fail("out of memory opening the decoder");
    }
    avcodec_parameters_to_context(ctx, st->codecpar);
    // Parallelism belongs to the loader (one reader per worker); a single
    // decoder thread also keeps output latency at one frame.
    ctx->thread_count = 1;
    // Frames the stream did not announce (a size change mid-stream) stay
    // under the same limit.
    ctx->max_pixels = kMaxVideoPixels;
    r = avcodec_open2(ctx, codec, nullptr);
    if (r < 0) {
      fail(
          "cannot open the " + std::string(codec->name) +
          " decoder: " + av_error(r));
    }
    width = ctx->width;
    height = ctx->height;
    if (width <= 0 || height <= 0) {
      fail("video stream has no frame size");
    }
    if (int64_t(width) * height > kMaxVideoPixels) {
      fail(
          "frame size " + std::to_string(width) + "x" + std::to_string(height) +
          " exceeds the limit of " + std::to_string(kMaxVideoPixels) +
          " pixels");
    }
    if (short_side > 0) {
      const double s = double(short_side) / std::min(width, height);
      width = std::max(1, static_cast<int>(std::lround(width * s)));
      height = std::max(1, static_cast<int>(std::lround(height * s)));
    }
    AVRational rate = av_guess_frame_rate(fmt, st, nullptr);
    fps = rate.num > 0 && rate.den > 0 ? av_q2d(rate) : 25.0;
    start_ts = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
    if (st->nb_frames > 0) {
      count = st->nb_frames;
      index_is_complete = std::strncmp(fmt->iformat->name, "mov,", 4) == 0;
    } else if (st->duration != AV_NOPTS_VALUE && st->duration > 0) {
      count = std::llround(st->duration * av_q2d(st->time_base) * fps);
    } else if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0) {
      count = std::llround(fmt->duration / double(AV_TIME_BASE) * fps);
    }
  }

  int64_t ts_of(int64_t index) const {
    return start_ts + std::llround(index / fps / av_q2d(st->time_base));
  }

  int64_t index_of_ts(int64_t ts) const {
    return std::llround((ts - start_ts) * av_q2d(st->time_base) * fps);
  }

  // Decodes the next frame into `frame`; false at the end of the stream,
  // leaving `frame` as it was (the last frame stays available).
  bool decode_next() {
    while (true) {
      int r = avcodec_receive_frame(ctx, next);
      if (r == 0) {
        av_frame_unref(frame);
        av_frame_move_ref(frame, next);
        ++decoded;
        ++seq;
        // The decoder conceals damage (grey or smeared blocks) and carries
        // on; a frame it had to patch up is not training data.
        if ((frame->flags & AV_FRAME_FLAG_CORRUPT) != 0 ||
            frame->decode_error_flags != 0) {
          fail(
              "frame " + std::to_string(frame_index()) +
              " is corrupt (the decoder had to conceal damaged data)");
        }
        return true;
      }
      if (r == AVERROR_EOF) {
        return false;
      }
      if (r != AVERROR(EAGAIN)) {
        fail(
            "decode error after frame " + std::to_string(pos) + ": " +
            av_error(r));
      }
      if (draining) {
        return false;
      }
      while (true) {
        r = av_read_frame(fmt, pkt);
        if (r < 0) {
          if (r != AVERROR_EOF) {
            fail(
                "cannot read the file after frame " + std::to_string(pos) +
                " (truncated or corrupt?): " + av_error(r));
          }
          check_complete();
          avcodec_send_packet(ctx, nullptr);
          draining = true;
          break;
        }
        if (pkt->stream_index != si) {
          av_packet_unref(pkt);
          continue;
        }
        if (pkt->dts != AV_NOPTS_VALUE) {
          last_dts = pkt->dts;
        }
        if ((pkt->flags & AV_PKT_FLAG_CORRUPT) != 0) {
          av_packet_unref(pkt);
          fail(
              "the packet after frame " + std::to_string(pos) +
              " is damaged (truncated file?)");
        }
        r = avcodec_send_packet(ctx, pkt);
        av_packet_unref(pkt);
        if (r < 0 && r != AVERROR(EAGAIN)) {
          fail(
              "corrupt data after frame " + std::to_string(pos) + ": " +
              av_error(r));
        }
        break;
      }
    }
  }

  int64_t frame_index() {
    const int64_t ts = frame->best_effort_timestamp;
    if (ts == AV_NOPTS_VALUE) {
      seekable = false; // positions are only known by counting from the start
      return seq - 1;
    }
    return index_of_ts(ts);
  }

  void reset_decoder() {
    avcodec_flush_buffers(ctx);
    draining = false;
    have_cur = false;
  }

  void seek_to_start() {
    int r = av_seek_frame(fmt, si, start_ts, AVSEEK_FLAG_BACKWARD);
    if (r < 0) {
      r = av_seek_frame(fmt, -1, 0, AVSEEK_FLAG_BACKWARD | AVSEEK_FLAG_BYTE);
    }
    if (r < 0) {
      fail("cannot rewind the video: " + av_error(r));
    }
    reset_decoder();
    pos = -1;
    seq = 0;
  }

  // Seeks so that the next decoded frame is at or before `t`. Key-frame
  // timestamps in an index can be decode times, a little before presentation,
  // so a seek that lands past `t` retries further back.
  void seek_before(int64_t t) {
    const int64_t second = std::max<int64_t>(1, std::llround(fps));
    for (int attempt = 0; attempt < 6; ++attempt) {
      const int64_t target = t - (attempt == 0 ? 0 : second << (attempt - 1));
      if (target <= 0) {
        break;
      }
      if (av_seek_frame(fmt, si, ts_of(target), AVSEEK_FLAG_BACKWARD) < 0) {
        break;
      }
      reset_decoder();
      if (!decode_next()) {
        continue;
      }
      const int64_t idx = frame_index();
      if (idx <= t) {
        pos = idx;
        have_cur = true;
        return;
      }
    }
    seek_to_start();
  }

  bool worth_seeking(int64_t t) const {
    if (!seekable || t - pos <= 1) {
      return false;
    }
    const int k = av_index_search_timestamp(st, ts_of(t), AVSEEK_FLAG_BACKWARD);
    if (k >= 0) {
      const AVIndexEntry* e = avformat_index_get_entry(st, k);
      return e != nullptr && index_of_ts(e->timestamp) > pos;
    }
    return t - pos > kUnindexedSeekGap;
  }

  // Leaves in `frame` the first frame with index >= t (or the last frame).
  void position(int64_t t) {
    if (have_cur && pos == t) {
      return;
    }
    if (pos > t) {
      if (seekable) {
        seek_before(t);
      } else {
        seek_to_start();
      }
    } else if (worth_seeking(t)) {
      seek_before(t);
    }
    while (!have_cur || pos < t) {
      if (!decode_next()) {
        if (!have_cur) {
          fail("no decodable frames");
        }
        return; // past the end: keep the last frame
      }
      have_cur = true;
      pos = frame_index();
    }
  }

  // At the end of the file: one whose index lists packets past the last
  // one read is truncated, whatever frame was wanted (a request past the
  // end would otherwise get a frame from before the cut as the last one).
  void check_complete() const {
    if (!index_is_complete || last_dts == AV_NOPTS_VALUE) {
      return;
    }
    const int entries = avformat_index_get_entries_count(st);
    const AVIndexEntry* last =
        entries > 0 ? avformat_index_get_entry(st, entries - 1) : nullptr;
    if (last != nullptr && last->timestamp > last_dts) {
      fail(
          "the file ends at frame " + std::to_string(index_of_ts(last_dts)) +
          " of the " + std::to_string(count) +
          " its index lists (truncated file?)");
    }
  }

  void convert(uint8_t* dst) {
    if (frame->format < 0 || frame->data[0] == nullptr) {
      fail("no decoded frame to convert");
    }
    sws = sws_getCachedContext(
        sws,
        frame->width,
        frame->height,
        static_cast<AVPixelFormat>(frame->format),
        width,
        height,
        AV_PIX_FMT_RGB24,
        SWS_BILINEAR,
        nullptr,
        nullptr,
        nullptr);
    if (!sws) {
      fail("cannot convert pixel format to RGB");
    }
    // swscale's SIMD converters write whole vector blocks and can run past
    // the end of a row of a packed destination whose stride is only
    // 3 * width (seen as heap corruption on 24-pixel-wide mp4s); so convert
    // into a buffer with 64-byte aligned rows plus a block of slack, then
    // copy the rows out.
    const int stride = (3 * width + 63) / 64 * 64;
    rgb.resize(size_t(stride) * size_t(height) + 256);
    uint8_t* planes[4] = {rgb.data(), nullptr, nullptr, nullptr};
    int strides[4] = {stride, 0, 0, 0};
    sws_scale(
        sws, frame->data, frame->linesize, 0, frame->height, planes, strides);
    for (int y = 0; y < height; ++y)
      std::memcpy(
          dst + size_t(y) * 3 * width,
          rgb.data() + size_t(y) * stride,
          size_t(3) * width);
  }
  std::vector<uint8_t> rgb; // convert()'s padded RGB rows
};

VideoReader::VideoReader(const std::string& path, int64_t short_side)
    : impl_(new Impl) {
  impl_->path = path;
  impl_->short_side = short_side;
  impl_->open();
}

VideoReader::VideoReader(
    const void* data, size_t size, const std::string& name, int64_t short_side)
    : impl_(new Impl) {
  impl_->path = name;
  impl_->short_side = short_side;
  impl_->memory = std::make_unique<MemoryFile>();
  const auto* b = static_cast<const uint8_t*>(data);
  impl_->memory->bytes.assign(b, b + size);
  impl_->open();
}

VideoReader::~VideoReader() = default;

int64_t VideoReader::frame_count() const {
  return impl_->count;
}
double VideoReader::frame_rate() const {
  return impl_->fps;
}
int64_t VideoReader::width() const {
  return impl_->width;
}
int64_t VideoReader::height() const {
  return impl_->height;
}
int64_t VideoReader::frames_decoded() const {
  return impl_->decoded;
}

at::Tensor VideoReader::read_frames(const std::vector<int64_t>& indices) {
  Impl& m = *impl_;
  const int64_t n = static_cast<int64_t>(indices.size());
  at::Tensor out = at::empty({n, m.height, m.width, 3}, at::kByte);
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) {
    if (indices[i] < 0) {
      m.fail("negative frame index " + std::to_string(indices[i]));
    }
    order[i] = i;
  }
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return indices[a] < indices[b];
  });
  const int64_t plane = m.height * m.width * 3;
  uint8_t* base = out.data_ptr<uint8_t>();
  for (int64_t k = 0; k < n; ++k) {
    const int64_t i = order[k];
    if (k > 0 && indices[order[k - 1]] == indices[i]) {
      std::memcpy(base + i * plane, base + order[k - 1] * plane, plane);
      continue;
    }
    m.position(indices[i]);
    m.convert(base + i * plane);
  }
  return out;
}

at::Tensor VideoReader::read_all() {
  Impl& m = *impl_;
  if (m.pos != -1 || m.have_cur) {
    m.seek_to_start();
  }
  std::vector<at::Tensor> frames;
  while (m.decode_next()) {
    at::Tensor f = at::empty({m.height, m.width, 3}, at::kByte);
    m.convert(f.data_ptr<uint8_t>());
    frames.push_back(f);
    m.have_cur = true;
    m.pos = m.frame_index();
  }
  if (frames.empty()) {
    m.fail("no decodable frames");
  }

  return at::stack(frames);
}

} // namespace cakes::data
