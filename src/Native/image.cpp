// Image codecs and the training augmentation kernel. No torch here: this unit compiles in a second
// and runs on the loader's worker threads, which write straight into the caller's (C#) buffers.
//
// Conventions: every export returns 1 (or a handle) on success and 0 (or null) on failure with the
// reason in the thread's error slot; pixel buffers are row-major HWC uint8; sizes are checked
// against the caller's capacity before a byte is written.
#include "common.h"

#include <png.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr int kFormatJpeg = 1;
constexpr int kFormatPng = 2;

// The largest side we accept: guards against absurd headers allocating gigabytes.
constexpr int64_t kMaxSide = 1 << 15;

[[noreturn]] void fail(const std::string& why) { throw std::runtime_error(why); }

bool is_png(const uint8_t* d, int64_t n) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  return n >= 8 && std::memcmp(d, sig, 8) == 0;
}
bool is_jpeg(const uint8_t* d, int64_t n) { return n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF; }

uint32_t be32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }

// One TurboJPEG decompressor per thread: creating one costs more than decoding a small image.
struct TjHandle {
  tjhandle h = nullptr;
  bool compress;
  explicit TjHandle(bool c) : compress(c) {}
  ~TjHandle() { if (h) tjDestroy(h); }
  tjhandle get() {
    if (!h) h = compress ? tjInitCompress() : tjInitDecompress();
    if (!h) fail("cannot initialise libjpeg-turbo");
    return h;
  }
};
thread_local TjHandle t_decoder(false);
thread_local TjHandle t_encoder(true);

std::string tj_message(tjhandle h) {
  const char* m = tjGetErrorStr2(h);
  return m ? std::string(m) : std::string("unknown libjpeg-turbo error");
}

struct ImageInfo {
  int format = 0;
  int64_t height = 0, width = 0;
  int color = 0;  // PNG colour type, or 0 for JPEG
  int depth = 8;
};

ImageInfo probe(const uint8_t* data, int64_t len) {
  ImageInfo info;
  if (data == nullptr || len <= 0) fail("the file is empty");
  if (is_png(data, len)) {
    // Signature, then the IHDR chunk: length, "IHDR", width, height, depth, colour type.
    if (len < 8 + 8 + 13) fail("truncated PNG (no complete IHDR header)");
    if (std::memcmp(data + 12, "IHDR", 4) != 0) fail("corrupt PNG (the first chunk is not IHDR)");
    info.format = kFormatPng;
    info.width = be32(data + 16);
    info.height = be32(data + 20);
    info.depth = data[24];
    info.color = data[25];
  } else if (is_jpeg(data, len)) {
    tjhandle h = t_decoder.get();
    int w = 0, hh = 0, sub = 0, cs = 0;
    if (tjDecompressHeader3(h, data, static_cast<unsigned long>(len), &w, &hh, &sub, &cs) != 0)
      fail("corrupt JPEG header: " + tj_message(h));
    info.format = kFormatJpeg;
    info.width = w;
    info.height = hh;
  } else {
    fail("not a JPEG or PNG file (unknown signature)");
  }
  if (info.width <= 0 || info.height <= 0 || info.width > kMaxSide || info.height > kMaxSide)
    fail("implausible image size " + std::to_string(info.width) + "x" + std::to_string(info.height));
  return info;
}

// ------------------------------------------------------------------------------------ PNG read
// libpng reports errors by longjmp. The functions that call setjmp keep only plain data in their
// frames (no destructors to skip); everything owned lives in the caller.
struct PngMem {
  const uint8_t* data;
  size_t size;
  size_t pos;
};

struct PngReadJob {
  PngMem mem;
  int mode;            // 0: RGB image, 1: mask (indices/values, possibly 16-bit)
  png_bytep* rows;     // one pointer per row, into the destination
  int64_t height;
  int64_t row_bytes;   // expected bytes per row after transforms
  int out_channels;    // filled: channels per pixel after transforms
  int out_depth;       // filled: bits per channel after transforms
  int color;           // filled: original colour type
  int stage;           // 0: header only, 1: full read
  char message[256];
};

void png_on_error(png_structp png, png_const_charp msg) {
  auto* job = static_cast<PngReadJob*>(png_get_error_ptr(png));
  std::snprintf(job->message, sizeof job->message, "%s", msg ? msg : "libpng error");
  png_longjmp(png, 1);
}
void png_on_warning(png_structp, png_const_charp) {}

void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
  auto* mem = static_cast<PngMem*>(png_get_io_ptr(png));
  if (mem->pos + n > mem->size) png_error(png, "truncated PNG (the data ends early)");
  std::memcpy(out, mem->data + mem->pos, n);
  mem->pos += n;
}

// Returns 1 on success; 0 with job->message set. Stage 0 reads the header and sets the transforms
// only (to learn the row size); stage 1 also reads the pixels into job->rows.
int png_run(PngReadJob* job) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, job, png_on_error, png_on_warning);
  if (!png) { std::snprintf(job->message, sizeof job->message, "cannot initialise libpng"); return 0; }
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    std::snprintf(job->message, sizeof job->message, "cannot initialise libpng");
    return 0;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return 0;
  }
  png_set_read_fn(png, &job->mem, png_read_mem);
  // Some tools write masks with slightly wrong CRCs or odd ancillary chunks; pixels still decode.
  png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
  png_read_info(png, info);
  int color = png_get_color_type(png, info);
  int depth = png_get_bit_depth(png, info);
  job->color = color;
  if (job->mode == 0) {
    // Everything becomes 8-bit RGB: palette expanded, gray replicated, alpha dropped, 16 bits scaled.
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_scale_16(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  } else {
    // Masks keep their values: palette indices and gray levels unpacked to one byte each, no
    // scaling; 16-bit samples are kept (little-endian) and checked by the caller.
    if (depth < 8) png_set_packing(png);
    if (depth == 16) png_set_swap(png);
  }
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  job->out_channels = png_get_channels(png, info);
  job->out_depth = png_get_bit_depth(png, info);
  if (job->stage == 1) {
    if (static_cast<int64_t>(png_get_rowbytes(png, info)) != job->row_bytes) png_error(png, "unexpected PNG row size");
    png_read_image(png, job->rows);
    png_read_end(png, nullptr);
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return 1;
}

// Reads a PNG into dst (height*row_bytes bytes); returns (channels, depth, colour type).
struct PngLayout {
  int channels, depth, color;
};
PngLayout png_read(const uint8_t* data, int64_t len, int mode, int64_t height, int64_t width, uint8_t* dst, int64_t cap) {
  PngReadJob job{};
  job.mem = {data, static_cast<size_t>(len), 0};
  job.mode = mode;
  job.height = height;
  job.stage = 0;
  if (!png_run(&job)) fail(job.message);
  job.row_bytes = width * job.out_channels * (job.out_depth / 8);
  if (job.out_depth != 8 && job.out_depth != 16) fail("unsupported PNG bit depth after conversion");
  if (job.row_bytes * height > cap) fail("PNG pixel buffer too small");
  std::vector<png_bytep> rows(static_cast<size_t>(height));
  for (int64_t y = 0; y < height; ++y) rows[y] = dst + y * job.row_bytes;
  job.rows = rows.data();
  job.mem.pos = 0;
  job.stage = 1;
  if (!png_run(&job)) fail(job.message);
  return {job.out_channels, job.out_depth, job.color};
}

// The PASCAL VOC colour map: bits of the index spread over the high bits of R, G and B.
void voc_palette(uint8_t* pal) {
  for (int i = 0; i < 256; ++i) {
    int r = 0, g = 0, b = 0, c = i;
    for (int j = 0; j < 8; ++j) {
      r |= ((c >> 0) & 1) << (7 - j);
      g |= ((c >> 1) & 1) << (7 - j);
      b |= ((c >> 2) & 1) << (7 - j);
      c >>= 3;
    }
    pal[3 * i] = uint8_t(r);
    pal[3 * i + 1] = uint8_t(g);
    pal[3 * i + 2] = uint8_t(b);
  }
}

// ------------------------------------------------------------------------------------ PNG write
struct PngWriteJob {
  std::vector<uint8_t>* out;
  const uint8_t* pixels;
  int64_t height, width;
  int mode;  // 1 gray, 2 palette, 3 RGB
  const uint8_t* palette;
  int palette_len;
  png_bytep* rows;
  char message[256];
};

void png_write_mem(png_structp png, png_bytep data, png_size_t n) {
  auto* out = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + n);
}
void png_flush_mem(png_structp) {}
void png_on_write_error(png_structp png, png_const_charp msg) {
  auto* job = static_cast<PngWriteJob*>(png_get_error_ptr(png));
  std::snprintf(job->message, sizeof job->message, "%s", msg ? msg : "libpng error");
  png_longjmp(png, 1);
}

int png_write_run(PngWriteJob* job) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, job, png_on_write_error, png_on_warning);
  if (!png) { std::snprintf(job->message, sizeof job->message, "cannot initialise libpng"); return 0; }
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    std::snprintf(job->message, sizeof job->message, "cannot initialise libpng");
    return 0;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return 0;
  }
  png_set_write_fn(png, job->out, png_write_mem, png_flush_mem);
  // Masks and predictions are small and flat: a fast level keeps writing cheap.
  png_set_compression_level(png, 3);
  int color = job->mode == 1 ? PNG_COLOR_TYPE_GRAY : job->mode == 2 ? PNG_COLOR_TYPE_PALETTE : PNG_COLOR_TYPE_RGB;
  png_set_IHDR(png, info, static_cast<png_uint_32>(job->width), static_cast<png_uint_32>(job->height), 8, color,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (job->mode == 2) {
    png_color pal[256];
    for (int i = 0; i < job->palette_len; ++i) {
      pal[i].red = job->palette[3 * i];
      pal[i].green = job->palette[3 * i + 1];
      pal[i].blue = job->palette[3 * i + 2];
    }
    png_set_PLTE(png, info, pal, job->palette_len);
  }
  png_write_info(png, info);
  png_write_image(png, job->rows);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return 1;
}

struct Buffer {
  std::vector<uint8_t> bytes;
};

// ------------------------------------------------------------------------------------ resampling
// Bilinear taps in 11-bit fixed point, half-pixel centres (PIL / align_corners=False convention).
constexpr int kShift = 11;
constexpr int kOne = 1 << kShift;

struct Tap {
  int i0, i1, w1;  // w0 = kOne - w1
};

void bilinear_taps(int64_t src, int64_t dst, std::vector<Tap>& taps) {
  taps.resize(static_cast<size_t>(dst));
  double scale = double(src) / double(dst);
  for (int64_t o = 0; o < dst; ++o) {
    double f = (o + 0.5) * scale - 0.5;
    if (f < 0) f = 0;
    int i0 = static_cast<int>(f);
    if (i0 > src - 1) i0 = static_cast<int>(src - 1);
    int i1 = i0 + 1 < src ? i0 + 1 : i0;
    int w1 = static_cast<int>(std::lround((f - i0) * kOne));
    if (i1 == i0) w1 = 0;
    taps[o] = {i0, i1, w1};
  }
}

int nearest_index(int64_t o, int64_t src, int64_t dst) {
  int64_t i = static_cast<int64_t>(std::floor((o + 0.5) * double(src) / double(dst)));
  return static_cast<int>(std::min<int64_t>(std::max<int64_t>(i, 0), src - 1));
}

// Separable Gaussian blur of an HWC uint8 image (edges replicated), fused with the normalisation
// into planar CHW floats: one output row at a time, vertical taps first (uint8 -> float), then the
// horizontal taps over a padded float row. Only row buffers; the inner loops vectorise.
void blur_normalize(const uint8_t* img, int64_t h, int64_t w, float sigma, const float* a, const float* b, float* out) {
  constexpr int c = 3;
  int radius = static_cast<int>(std::ceil(3.0f * sigma));
  if (radius > 32) radius = 32;
  std::vector<float> k(2 * radius + 1);
  float sum = 0;
  for (int i = -radius; i <= radius; ++i) sum += k[i + radius] = std::exp(-0.5f * i * i / (sigma * sigma));
  for (auto& v : k) v /= sum;
  const int64_t row = w * c;
  thread_local std::vector<float> vert, horiz;
  vert.resize(static_cast<size_t>((w + 2 * radius) * c));
  horiz.resize(static_cast<size_t>(row));
  const int64_t plane = h * w;
  for (int64_t y = 0; y < h; ++y) {
    float* v = vert.data() + radius * c;  // v[-radius*c .. row + radius*c) valid
    for (int64_t j = 0; j < row; ++j) v[j] = 0;
    for (int i = -radius; i <= radius; ++i) {
      int64_t yy = y + i < 0 ? 0 : y + i >= h ? h - 1 : y + i;
      const float ki = k[i + radius];
      const uint8_t* src = img + yy * row;
      for (int64_t j = 0; j < row; ++j) v[j] += ki * static_cast<float>(src[j]);
    }
    for (int r = 1; r <= radius; ++r)
      for (int ch = 0; ch < c; ++ch) {
        v[-r * c + ch] = v[ch];
        v[row - c + r * c + ch] = v[row - c + ch];
      }
    float* hz = horiz.data();
    for (int64_t j = 0; j < row; ++j) hz[j] = 0;
    for (int i = -radius; i <= radius; ++i) {
      const float ki = k[i + radius];
      const float* src = v + i * c;
      for (int64_t j = 0; j < row; ++j) hz[j] += ki * src[j];
    }
    // Round to 8 bits like an image filter would, then normalise into the three planes.
    for (int ch = 0; ch < c; ++ch) {
      float* dst = out + ch * plane + y * w;
      const float ac = a[ch], bc = b[ch];
      for (int64_t x = 0; x < w; ++x) {
        // Weights are positive and sum to 1, so the value is in [0, 255]: truncation rounds.
        int q = static_cast<int>(hz[x * c + ch] + 0.5f);
        dst[x] = static_cast<float>(q > 255 ? 255 : q) * ac + bc;
      }
    }
  }
}

}  // namespace

// ================================================================================== exports

// Reads the header: format (1 JPEG, 2 PNG), height and width. Cheap: no pixels are decoded.
DLT_API int32_t dlt_image_probe(const uint8_t* data, int64_t len, int32_t* format, int32_t* height, int32_t* width) {
  DLT_TRY {
    ImageInfo info = probe(data, len);
    *format = info.format;
    *height = static_cast<int32_t>(info.height);
    *width = static_cast<int32_t>(info.width);
    return 1;
  }
  DLT_CATCH(0)
}

// Decodes a JPEG or PNG into RGB HWC (height*width*3 bytes at out). Gray, palette, alpha and 16-bit
// PNGs are converted; CMYK and gray JPEGs are converted by libjpeg-turbo.
DLT_API int32_t dlt_image_decode_rgb(const uint8_t* data, int64_t len, uint8_t* out, int64_t cap) {
  DLT_TRY {
    ImageInfo info = probe(data, len);
    int64_t need = info.height * info.width * 3;
    if (cap < need) fail("output buffer too small");
    if (info.format == kFormatJpeg) {
      tjhandle h = t_decoder.get();
      if (tjDecompress2(h, data, static_cast<unsigned long>(len), out, static_cast<int>(info.width), 0,
                        static_cast<int>(info.height), TJPF_RGB, 0) != 0) {
        // Warnings (for example a truncated scan that still produced pixels) are not fatal in
        // libjpeg-turbo's own tools, but a truncated training image is bad data: refuse it.
        fail("corrupt JPEG: " + tj_message(h));
      }
    } else {
      png_read(data, len, 0, info.height, info.width, out, cap);
    }
    return 1;
  }
  DLT_CATCH(0)
}

// Decodes a class mask into height*width bytes: palette PNG -> palette indices; gray PNG (1-16 bit)
// -> values (16-bit values must fit in a byte); RGB(A) PNG -> the gray level when R=G=B, else the
// index of the colour in the VOC colour map; gray+alpha -> gray; JPEG -> luminance.
DLT_API int32_t dlt_image_decode_mask(const uint8_t* data, int64_t len, uint8_t* out, int64_t cap) {
  DLT_TRY {
    ImageInfo info = probe(data, len);
    int64_t n = info.height * info.width;
    if (cap < n) fail("output buffer too small");
    if (info.format == kFormatJpeg) {
      tjhandle h = t_decoder.get();
      if (tjDecompress2(h, data, static_cast<unsigned long>(len), out, static_cast<int>(info.width), 0,
                        static_cast<int>(info.height), TJPF_GRAY, 0) != 0)
        fail("corrupt JPEG: " + tj_message(h));
      return 1;
    }
    int channels = info.color == PNG_COLOR_TYPE_GRAY || info.color == PNG_COLOR_TYPE_PALETTE ? 1
                   : info.color == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                   : info.color == PNG_COLOR_TYPE_RGB ? 3 : 4;
    int bytes = info.depth == 16 ? 2 : 1;
    if (channels == 1 && bytes == 1) {
      png_read(data, len, 1, info.height, info.width, out, cap);
      return 1;
    }
    std::vector<uint8_t> tmp(static_cast<size_t>(n * channels * bytes));
    PngLayout lay = png_read(data, len, 1, info.height, info.width, tmp.data(), static_cast<int64_t>(tmp.size()));
    if (lay.channels != channels || lay.depth / 8 != bytes) fail("unexpected PNG layout");
    auto sample = [&](int64_t i, int ch) -> int {
      size_t k = static_cast<size_t>((i * channels + ch) * bytes);
      return bytes == 2 ? tmp[k] | (tmp[k + 1] << 8) : tmp[k];
    };
    if (channels <= 2) {
      for (int64_t i = 0; i < n; ++i) {
        int v = sample(i, 0);
        if (v > 255) fail("16-bit mask value " + std::to_string(v) + " does not fit a class index (0-255)");
        out[i] = static_cast<uint8_t>(v);
      }
      return 1;
    }
    // Colour masks: when every pixel is gray (R=G=B) the gray level is the value; otherwise every
    // pixel must be a colour of the VOC map (a mask saved as RGB), which gives its index. The
    // whole-image test matters because VOC's car colour (128,128,128) is itself gray.
    bool all_gray = true;
    for (int64_t i = 0; i < n && all_gray; ++i) all_gray = sample(i, 0) == sample(i, 1) && sample(i, 1) == sample(i, 2);
    if (all_gray) {
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(bytes == 2 ? sample(i, 0) >> 8 : sample(i, 0));
      return 1;
    }
    uint8_t pal[768];
    voc_palette(pal);
    std::vector<int16_t> lookup(1 << 24, -1);
    for (int i = 255; i >= 0; --i) lookup[(pal[3 * i] << 16) | (pal[3 * i + 1] << 8) | pal[3 * i + 2]] = int16_t(i);
    for (int64_t i = 0; i < n; ++i) {
      int r = sample(i, 0), g = sample(i, 1), b = sample(i, 2);
      if (bytes == 2) { r >>= 8; g >>= 8; b >>= 8; }
      int idx = lookup[(r << 16) | (g << 8) | b];
      if (idx < 0)
        fail("colour (" + std::to_string(r) + "," + std::to_string(g) + "," + std::to_string(b) + ") at pixel (x=" +
             std::to_string(i % info.width) + ", y=" + std::to_string(i / info.width) +
             ") is not a VOC palette colour: an RGB mask must use the VOC colour map or be gray");
      out[i] = static_cast<uint8_t>(idx);
    }
    return 1;
  }
  DLT_CATCH(0)
}

// Encodes pixels as PNG into a new buffer handle. mode 1: gray (h*w), 2: palette indices (h*w,
// palette of palette_len RGB triples, the VOC map when null), 3: RGB (h*w*3).
DLT_API void* dlt_image_encode_png(const uint8_t* pixels, int32_t height, int32_t width, int32_t mode,
                                   const uint8_t* palette, int32_t palette_len) {
  DLT_TRY {
    if (height <= 0 || width <= 0) fail("cannot encode an empty image");
    if (mode < 1 || mode > 3) fail("unknown PNG mode");
    uint8_t voc[768];
    if (mode == 2 && palette == nullptr) {
      voc_palette(voc);
      palette = voc;
      palette_len = 256;
    }
    if (mode == 2 && (palette_len < 1 || palette_len > 256)) fail("a PNG palette holds 1 to 256 colours");
    int64_t row = int64_t(width) * (mode == 3 ? 3 : 1);
    std::vector<png_bytep> rows(static_cast<size_t>(height));
    for (int64_t y = 0; y < height; ++y) rows[y] = const_cast<png_bytep>(pixels + y * row);
    auto* buf = new Buffer();
    buf->bytes.reserve(static_cast<size_t>(height * row / 4 + 1024));
    PngWriteJob job{};
    job.out = &buf->bytes;
    job.pixels = pixels;
    job.height = height;
    job.width = width;
    job.mode = mode;
    job.palette = palette;
    job.palette_len = palette_len;
    job.rows = rows.data();
    if (!png_write_run(&job)) {
      delete buf;
      fail(job.message);
    }
    return buf;
  }
  DLT_CATCH(nullptr)
}

// Encodes RGB HWC pixels as a baseline JPEG (4:2:0) into a new buffer handle.
DLT_API void* dlt_image_encode_jpeg(const uint8_t* rgb, int32_t height, int32_t width, int32_t quality) {
  DLT_TRY {
    if (height <= 0 || width <= 0) fail("cannot encode an empty image");
    if (quality < 1 || quality > 100) fail("JPEG quality must be 1-100");
    tjhandle h = t_encoder.get();
    unsigned char* jpeg = nullptr;
    unsigned long size = 0;
    if (tjCompress2(h, rgb, width, 0, height, TJPF_RGB, &jpeg, &size, TJSAMP_420, quality, TJFLAG_FASTDCT) != 0) {
      if (jpeg) tjFree(jpeg);
      fail("JPEG encoding failed: " + tj_message(h));
    }
    auto* buf = new Buffer();
    buf->bytes.assign(jpeg, jpeg + size);
    tjFree(jpeg);
    return buf;
  }
  DLT_CATCH(nullptr)
}

DLT_API int64_t dlt_image_buffer_size(void* handle) { return static_cast<Buffer*>(handle)->bytes.size(); }
DLT_API const uint8_t* dlt_image_buffer_data(void* handle) { return static_cast<Buffer*>(handle)->bytes.data(); }
DLT_API void dlt_image_buffer_free(void* handle) { delete static_cast<Buffer*>(handle); }

// Writes the 256-colour VOC map (768 bytes) to out.
DLT_API void dlt_image_voc_palette(uint8_t* out) { voc_palette(out); }

// Bilinear resize of an HWC uint8 image (half-pixel centres, no antialiasing).
DLT_API int32_t dlt_image_resize_bilinear(const uint8_t* src, int32_t h, int32_t w, int32_t c, uint8_t* dst, int32_t oh, int32_t ow) {
  DLT_TRY {
    if (h <= 0 || w <= 0 || oh <= 0 || ow <= 0 || c <= 0) fail("resize: sizes must be positive");
    std::vector<Tap> ty, tx;
    bilinear_taps(h, oh, ty);
    bilinear_taps(w, ow, tx);
    for (int y = 0; y < oh; ++y) {
      const uint8_t* r0 = src + int64_t(ty[y].i0) * w * c;
      const uint8_t* r1 = src + int64_t(ty[y].i1) * w * c;
      int wy1 = ty[y].w1, wy0 = kOne - wy1;
      uint8_t* o = dst + int64_t(y) * ow * c;
      for (int x = 0; x < ow; ++x) {
        int a = tx[x].i0 * c, b = tx[x].i1 * c, wx1 = tx[x].w1, wx0 = kOne - wx1;
        for (int ch = 0; ch < c; ++ch) {
          int64_t top = int64_t(r0[a + ch]) * wx0 + int64_t(r0[b + ch]) * wx1;
          int64_t bot = int64_t(r1[a + ch]) * wx0 + int64_t(r1[b + ch]) * wx1;
          int64_t v = (top * wy0 + bot * wy1 + (int64_t(1) << (2 * kShift - 1))) >> (2 * kShift);
          o[x * c + ch] = static_cast<uint8_t>(v > 255 ? 255 : v);
        }
      }
    }
    return 1;
  }
  DLT_CATCH(0)
}

// Nearest-neighbour resize of a single-channel uint8 map (PIL's NEAREST sampling).
DLT_API int32_t dlt_image_resize_nearest(const uint8_t* src, int32_t h, int32_t w, uint8_t* dst, int32_t oh, int32_t ow) {
  DLT_TRY {
    if (h <= 0 || w <= 0 || oh <= 0 || ow <= 0) fail("resize: sizes must be positive");
    std::vector<int> xs(ow);
    for (int x = 0; x < ow; ++x) xs[x] = nearest_index(x, w, ow);
    for (int y = 0; y < oh; ++y) {
      const uint8_t* r = src + int64_t(nearest_index(y, h, oh)) * w;
      uint8_t* o = dst + int64_t(y) * ow;
      for (int x = 0; x < ow; ++x) o[x] = r[xs[x]];
    }
    return 1;
  }
  DLT_CATCH(0)
}

// The whole per-sample augmentation in one pass, writing into the batch buffers:
//   the image (h x w RGB) and mask (h x w, may be null) are conceptually resized to
//   scaled_h x scaled_w (bilinear / nearest), mirrored when flip != 0, padded on the bottom and
//   right with pad_rgb / pad_mask, and cropped at (crop_y, crop_x) to out_h x out_w. Only the
//   output pixels are computed. Then an optional Gaussian blur (sigma > 0) of the image crop, and
//   normalisation (v/255 - mean)/std into out_img as planar CHW float32; the mask crop goes to
//   out_mask as int64 (may be null).
DLT_API int32_t dlt_image_augment(const uint8_t* img, const uint8_t* mask, int32_t h, int32_t w,
                                  int32_t scaled_h, int32_t scaled_w, int32_t crop_y, int32_t crop_x,
                                  int32_t out_h, int32_t out_w, int32_t flip, float blur_sigma,
                                  const float* mean, const float* stdv, const uint8_t* pad_rgb, int32_t pad_mask,
                                  float* out_img, int64_t* out_mask) {
  DLT_TRY {
    if (h <= 0 || w <= 0 || scaled_h <= 0 || scaled_w <= 0 || out_h <= 0 || out_w <= 0)
      fail("augment: sizes must be positive");
    if (crop_y < 0 || crop_x < 0) fail("augment: crop offsets must be non-negative");
    thread_local std::vector<Tap> ty, tx;
    thread_local std::vector<int> my, mx;
    thread_local std::vector<uint8_t> crop;
    ty.resize(out_h);
    my.resize(out_h);
    tx.resize(out_w);
    mx.resize(out_w);
    std::vector<Tap> all_y, all_x;
    bilinear_taps(h, scaled_h, all_y);
    bilinear_taps(w, scaled_w, all_x);
    // Per output row/column: the taps of the scaled coordinate, or i0 = -1 for padding.
    for (int oy = 0; oy < out_h; ++oy) {
      int64_t sy = int64_t(crop_y) + oy;
      if (sy >= scaled_h) { ty[oy] = {-1, -1, 0}; my[oy] = -1; continue; }
      ty[oy] = all_y[sy];
      my[oy] = nearest_index(sy, h, scaled_h);
    }
    for (int ox = 0; ox < out_w; ++ox) {
      int64_t sx = int64_t(crop_x) + ox;
      if (sx >= scaled_w) { tx[ox] = {-1, -1, 0}; mx[ox] = -1; continue; }
      if (flip) sx = scaled_w - 1 - sx;
      tx[ox] = all_x[sx];
      mx[ox] = nearest_index(sx, w, scaled_w);
    }
    crop.resize(static_cast<size_t>(int64_t(out_h) * out_w * 3));
    uint8_t* cp = crop.data();
    for (int oy = 0; oy < out_h; ++oy) {
      uint8_t* o = cp + int64_t(oy) * out_w * 3;
      if (ty[oy].i0 < 0) {
        for (int ox = 0; ox < out_w; ++ox) std::memcpy(o + ox * 3, pad_rgb, 3);
        continue;
      }
      const uint8_t* r0 = img + int64_t(ty[oy].i0) * w * 3;
      const uint8_t* r1 = img + int64_t(ty[oy].i1) * w * 3;
      int wy1 = ty[oy].w1, wy0 = kOne - wy1;
      for (int ox = 0; ox < out_w; ++ox) {
        const Tap& t = tx[ox];
        if (t.i0 < 0) { std::memcpy(o + ox * 3, pad_rgb, 3); continue; }
        int a = t.i0 * 3, b = t.i1 * 3, wx1 = t.w1, wx0 = kOne - wx1;
        for (int ch = 0; ch < 3; ++ch) {
          // 255 * 2^11 * 2^11 < 2^31: the whole interpolation fits in 32 bits.
          int32_t top = int32_t(r0[a + ch]) * wx0 + int32_t(r0[b + ch]) * wx1;
          int32_t bot = int32_t(r1[a + ch]) * wx0 + int32_t(r1[b + ch]) * wx1;
          int32_t v = (top * wy0 + bot * wy1 + (1 << (2 * kShift - 1))) >> (2 * kShift);
          o[ox * 3 + ch] = static_cast<uint8_t>(v > 255 ? 255 : v);
        }
      }
    }
    // Normalise into planar CHW: v * a + b with a = 1/(255 std), b = -mean/std.
    int64_t plane = int64_t(out_h) * out_w;
    float a[3], b[3];
    for (int ch = 0; ch < 3; ++ch) {
      a[ch] = 1.0f / (255.0f * stdv[ch]);
      b[ch] = -mean[ch] / stdv[ch];
    }
    if (blur_sigma > 0.0f && std::ceil(3.0f * blur_sigma) >= 1.0f) {
      blur_normalize(cp, out_h, out_w, blur_sigma, a, b, out_img);
    } else {
      for (int ch = 0; ch < 3; ++ch) {
        float lut[256];
        for (int v = 0; v < 256; ++v) lut[v] = v * a[ch] + b[ch];
        float* dst = out_img + ch * plane;
        const uint8_t* src = cp + ch;
        for (int64_t i = 0; i < plane; ++i) dst[i] = lut[src[i * 3]];
      }
    }
    if (out_mask != nullptr) {
      for (int oy = 0; oy < out_h; ++oy) {
        int64_t* o = out_mask + int64_t(oy) * out_w;
        if (mask == nullptr || my[oy] < 0) {
          for (int ox = 0; ox < out_w; ++ox) o[ox] = pad_mask;
          continue;
        }
        const uint8_t* r = mask + int64_t(my[oy]) * w;
        for (int ox = 0; ox < out_w; ++ox) o[ox] = mx[ox] < 0 ? pad_mask : r[mx[ox]];
      }
    }
    return 1;
  }
  DLT_CATCH(0)
}
