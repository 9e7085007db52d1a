// The receiver of plate cameras that push over HTTP: see gateway/camera_receiver.h.
#include "gateway/camera_receiver.h"

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <boost/json.hpp>
#include <map>

#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "lane/camera_push.h"
#include "lane/health.h"
#include "lane/plate.h"

namespace lanegate::gateway {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr auto kWatchdogPeriod = seconds(5);
// Consecutive vehicles the loop saw with no read from the camera before it is degraded.

metrics::Counter& pushes(std::string_view vendor, std::string_view device,
                         std::string_view result) {
  return metrics::Registry::global().counter(
      "lanegate_camera_pushes_total", "Requests from push cameras by vendor, device and result",
      {{"vendor", std::string(vendor)},
       {"device", std::string(device)},
       {"result", std::string(result)}});
}

std::optional<lane::PlateColour> colour_of_provider_name(std::string_view name) {
  using lane::PlateColour;
  if (name == "BLUE") return PlateColour::kBlue;
  if (name == "YELLOW") return PlateColour::kYellow;
  if (name == "BLACK") return PlateColour::kBlack;
  if (name == "WHITE") return PlateColour::kWhite;
  if (name == "GREEN") return PlateColour::kGreen;
  if (name == "LIMEGREEN") return PlateColour::kYellowGreen;
  return std::nullopt;
}

bool same_text_ci(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// The token of a push: `?token=` or the password of HTTP Basic.
std::optional<std::string> push_token(const HttpRequest& req) {
  if (auto it = req.query.find("token"); it != req.query.end()) return it->second;
  auto it = req.headers.find("authorization");
  constexpr std::string_view kBasic = "Basic ";
  if (it == req.headers.end() || !it->second.starts_with(kBasic)) return std::nullopt;
  const std::string_view b64 = std::string_view(it->second).substr(kBasic.size());
  std::string decoded(boost::beast::detail::base64::decoded_size(b64.size()), '\0');
  const auto [n, used] =
      boost::beast::detail::base64::decode(decoded.data(), b64.data(), b64.size());
  (void)used;
  decoded.resize(n);
  const auto colon = decoded.find(':');
  if (colon == std::string::npos) return std::nullopt;
  return decoded.substr(colon + 1);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

json::array images_json(const std::vector<lane::ImageRef>& images) {
  json::array out;
  for (const auto& i : images) {
    out.push_back(json::object{{"kind", i.kind}, {"sha256", i.sha256}, {"bytes", i.bytes}});
  }
  return out;
}

}  // namespace

struct CameraReceiver::Impl : std::enable_shared_from_this<Impl> {
  struct Cam {
    config::DeviceSection cfg;
    lane::CameraVendor vendor = lane::CameraVendor::kGeneric;
    std::string lane;
    lane::Health health = lane::Health::kDown;
    bool heard = false;
    SteadyTime last_heard;
    int missed = 0;
    std::map<std::string, SteadyTime> recent;  // plate -> last read (repeat window)
  };

  asio::io_context& io;
  config::Config cfg;
  Store& store;
  EvidenceStore* evidence;
  lane::EventSink& sink;
  const Clock& clock;
  std::map<std::string, Cam, std::less<>> cams;  // by device id
  asio::steady_timer watchdog;
  bool running = false;
  std::optional<SteadyTime> last_sweep;

  Impl(asio::io_context& i, const config::Config& c, Store& s, EvidenceStore* e,
       lane::EventSink& k, const Clock& cl)
      : io(i), cfg(c), store(s), evidence(e), sink(k), clock(cl), watchdog(i) {
    load(c);
  }

  void load(const config::Config& c) {
    cfg = c;
    std::map<std::string, Cam, std::less<>> next;
    for (const auto& d : c.devices) {
      if (!d.push()) continue;
      Cam cam;
      if (auto it = cams.find(d.id); it != cams.end()) cam = std::move(it->second);
      cam.cfg = d;
      cam.vendor = lane::parse_vendor(d.protocol).value_or(lane::CameraVendor::kGeneric);
      cam.lane.clear();
      for (const auto& l : c.lanes) {
        if (l.camera == d.id) cam.lane = l.id;
      }
      lane::device_health_gauge(d.id).set(cam.health == lane::Health::kUp ? 2
                                          : cam.health == lane::Health::kDegraded ? 1
                                                                                  : 0);
      for (std::string_view r : {"read", "resent", "repeat", "no_plate", "refused", "duplicate",
                                 "heartbeat", "malformed", "identity", "store_failed"}) {
        pushes(d.protocol, d.id, r);
      }
      next.emplace(d.id, std::move(cam));
    }
    cams = std::move(next);
  }

  void set_health(Cam& cam, lane::Health to, const std::string& detail) {
    if (cam.health == to) return;
    const lane::Health from = cam.health;
    cam.health = to;
    lane::announce_health(cam.cfg.id, "VIA", "http", from, to, detail);
    lane::DeviceHealth ev;
    ev.device = cam.cfg.id;
    ev.from = from;
    ev.to = to;
    ev.detail = detail;
    ev.at = clock.now();
    sink.post(std::move(ev));
  }

  void heard(Cam& cam) {
    cam.heard = true;
    cam.last_heard = clock.steady_now();
    if (cam.health == lane::Health::kDown) {
      set_health(cam, lane::Health::kUp, "");
    }
  }

  void arm_watchdog() {
    watchdog.expires_after(kWatchdogPeriod);
    watchdog.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
      auto self = w.lock();
      if (!self || ec || !self->running) return;
      self->check_silence();
      self->arm_watchdog();
    });
  }

  void check_silence() {
    const auto now = clock.steady_now();
    if (evidence != nullptr && (!last_sweep || now - *last_sweep >= std::chrono::hours(1))) {
      // Retention of evidence images, hourly (gateway/evidence.h rule 3).
      last_sweep = now;
      evidence->sweep(clock.now());
    }
    for (auto& [id, cam] : cams) {
      const auto limit = seconds(cam.cfg.heartbeat_timeout_s);
      if (cam.heard && cam.health != lane::Health::kDown && now - cam.last_heard > limit) {
        set_health(cam, lane::Health::kDown,
                   "no heartbeat and no push for " + std::to_string(cam.cfg.heartbeat_timeout_s) +
                       " s");
      }
    }
  }

  // The camera of `vendor` whose token this request carries (and whose address, when set,
  // is the peer's); null when none.
  Cam* authenticate(lane::CameraVendor vendor, const HttpRequest& req) {
    auto token = push_token(req);
    if (!token || token->empty()) return nullptr;
    const std::string hash = crypto::sha256_hex(*token);
    Cam* found = nullptr;
    for (auto& [id, cam] : cams) {
      // Every candidate is compared, so the time does not tell which one matched.
      if (constant_time_equal(hash, cam.cfg.token_sha256) && cam.vendor == vendor) {
        found = &cam;
      }
    }
    if (found != nullptr && !found->cfg.address.empty() && found->cfg.address != req.peer) {
      return nullptr;
    }
    return found;
  }

  void handle(lane::CameraVendor vendor, const HttpRequest& req, Reply reply) {
    const std::string_view vname = lane::vendor_name(vendor);
    Cam* cam = authenticate(vendor, req);
    if (cam == nullptr) {
      pushes(vname, "", "unauthorized").inc();
      log::warn("camera push refused: no camera with this token and address",
                {{"VENDOR", vname}, {"PEER", req.peer}});
      auto resp = HttpResponse::error(401, "unauthorized",
                                      "the push token (query token= or HTTP Basic password) does "
                                      "not match a configured camera of this vendor and address");
      return reply(std::move(resp));
    }
    auto ct = req.headers.find("content-type");
    auto push = lane::parse_push(vendor, req.path, ct == req.headers.end() ? "" : ct->second,
                                 req.body);
    if (!push) {
      pushes(vname, cam->cfg.id, "malformed").inc();
      log::warn("camera push malformed", {{"DEVICE", cam->cfg.id},
                                          {"FIELD", push.error().field},
                                          {"ERROR", push.error().message}});
      return reply(HttpResponse::error(400, "malformed_push", push.error().message,
                                       push.error().field));
    }
    const bool identity_ok = vendor == lane::CameraVendor::kHikvision
                                 ? same_text_ci(push->camera, cam->cfg.serial)
                                 : push->camera == cam->cfg.serial;
    if (!identity_ok) {
      pushes(vname, cam->cfg.id, "identity").inc();
      log::warn("camera push names another camera than its token's",
                {{"DEVICE", cam->cfg.id}, {"VENDOR", vname}});
      return reply(HttpResponse::error(403, "wrong_camera",
                                       "the push names a camera other than the token's device",
                                       "serial"));
    }
    heard(*cam);
    if (push->kind == lane::CameraPush::Kind::kHeartbeat) {
      pushes(vname, cam->cfg.id, "heartbeat").inc();
      // The spec names no heartbeat reply body (unconfirmed): 200, empty.
      HttpResponse ok;
      ok.content_type = "text/plain";
      return reply(std::move(ok));
    }
    plate(*cam, *push, std::move(reply));
  }

  void plate(Cam& cam, lane::CameraPush& push, Reply reply) {
    const std::string_view vname = lane::vendor_name(cam.vendor);
    const SystemTime received_at = clock.now();
    const SteadyTime received_steady = clock.steady_now();

    // Images first: hashed now, written in the background; never a reason to refuse.
    std::vector<lane::ImageRef> images;
    for (auto& img : push.images) {
      lane::ImageRef ref;
      ref.kind = img.kind;
      ref.bytes = static_cast<std::int64_t>(img.bytes.size());
      if (evidence != nullptr) {
        ref.sha256 = evidence->put(img.kind, std::move(img.bytes)).sha256_hex;
      } else {
        ref.sha256 = crypto::sha256_hex(img.bytes);
      }
      images.push_back(std::move(ref));
    }

    // Classify.
    Store::CameraEvent ev;
    ev.device = cam.cfg.id;
    ev.event_id = push.event_id;
    ev.vendor = std::string(vname);
    ev.lane = cam.lane;
    ev.received_at = received_at;
    ev.capture_ms = push.capture_ms;
    ev.plate_raw = push.plate_raw;
    ev.confidence = push.confidence;
    ev.offline = push.offline;
    ev.images = json::serialize(images_json(images));
    std::optional<lane::PlateColour> colour = push.colour;
    if (!colour && !push.colour_raw.empty()) {
      if (auto it = cam.cfg.colours.find(push.colour_raw); it != cam.cfg.colours.end()) {
        colour = colour_of_provider_name(it->second);
      }
    }
    ev.colour = colour ? std::string(lane::provider_colour_name(*colour)) : push.colour_raw;
    std::string refusal;
    lane::PlateColour read_colour = lane::PlateColour::kBlue;
    if (push.no_plate) {
      ev.outcome = "no_plate";
    } else if (push.confidence < cam.cfg.min_confidence) {
      lane::count_plate_rejection(cam.cfg.id, lane::PlateReject::kLowConfidence);
      refusal = std::string(lane::reject_name(lane::PlateReject::kLowConfidence));
    } else if (auto info = lane::classify_plate(push.plate_raw, colour, cfg.plates); !info) {
      lane::count_plate_rejection(cam.cfg.id, info.error().reason);
      refusal = std::string(lane::reject_name(info.error().reason));
    } else {
      ev.plate = info->plate;
      read_colour = info->colour;
      ev.colour = std::string(lane::provider_colour_name(info->colour));
    }
    if (!refusal.empty()) {
      ev.outcome = "refused:" + refusal;
    } else if (!ev.plate.empty()) {
      if (push.offline) {
        ev.outcome = "resent";
      } else {
        const auto window = milliseconds(cam.cfg.repeat_window_ms);
        std::erase_if(cam.recent,
                      [&](const auto& kv) { return received_steady - kv.second >= window; });
        if (cam.recent.contains(ev.plate)) {
          ev.outcome = "repeat";
        } else {
          cam.recent[ev.plate] = received_steady;
          ev.outcome = "read";
        }
      }
    }

    // Persist before anything answers.
    std::optional<std::int64_t> id;
    auto txn = store.db().begin();
    Status s = txn ? Status{} : Status(std::unexpected(txn.error()));
    if (s) {
      auto r = store.insert_camera_event(*txn, ev);
      if (!r) {
        s = std::unexpected(r.error());
      } else {
        id = *r;
        s = txn->commit();
      }
    }
    if (!s) {
      pushes(vname, cam.cfg.id, "store_failed").inc();
      log::error("camera push not stored: answered 503, the camera sends it again",
                 {{"DEVICE", cam.cfg.id}, {"ERROR", s.error().message}});
      return reply(HttpResponse::error(503, "not_stored", "the event could not be stored"));
    }
    if (!id) {
      pushes(vname, cam.cfg.id, "duplicate").inc();
      log::info("camera push already held", {{"DEVICE", cam.cfg.id}, {"EVENT", push.event_id}});
      // A duplicate never opens (the first one was decided already).
      return answer(cam, push, false, true, std::move(reply));
    }
    const std::string result = ev.outcome.starts_with("refused:") ? "refused" : ev.outcome;
    pushes(vname, cam.cfg.id, result).inc();
    log::info("camera push", {{"DEVICE", cam.cfg.id},
                              {"LANE", cam.lane},
                              {"OUTCOME", ev.outcome},
                              {"PLATE", log::mask_plate(ev.plate)},
                              {"IMAGES", static_cast<std::int64_t>(images.size())}});
    if (ev.outcome == "repeat") {
      return answer(cam, push, false, false, std::move(reply));
    }
    if (ev.outcome == "no_plate" || !refusal.empty()) {
      lane::NoPlateRead np;
      np.lane = cam.lane;
      np.device = cam.cfg.id;
      np.reason = ev.outcome == "no_plate" ? "no_plate" : refusal;
      np.camera_event = *id;
      np.images = std::move(images);
      np.received_at = received_at;
      sink.post(std::move(np));
      return answer(cam, push, false, false, std::move(reply));
    }
    cam.missed = 0;
    if (cam.health == lane::Health::kDegraded) set_health(cam, lane::Health::kUp, "");

    lane::PlateRead read;
    read.lane = cam.lane;
    read.device = cam.cfg.id;
    read.plate = ev.plate;
    read.colour = read_colour;
    read.confidence = push.confidence;
    read.device_time = push.capture_ms ? SystemTime(milliseconds(*push.capture_ms)) : received_at;
    read.received_at = received_at;
    read.received_steady = received_steady;
    read.camera_event = *id;
    read.resent = push.offline;
    read.images = std::move(images);
    if (cam.vendor != lane::CameraVendor::kVzenith || push.offline) {
      sink.post(std::move(read));
      return answer(cam, push, false, false, std::move(reply));
    }
    // Vzenith: the reply opens the camera's relay, so it waits for the lane's decision.
    struct Waiting {
      Reply reply;
      lane::CameraPush push;
      bool done = false;
    };
    auto waiting = std::make_shared<Waiting>(Waiting{std::move(reply), push, false});
    auto timer = std::make_shared<asio::steady_timer>(io, milliseconds(cam.cfg.reply_wait_ms));
    const std::string device = cam.cfg.id;
    auto finish = [waiting, timer, device](bool opened, bool late) {
      if (waiting->done) {
        if (opened && late) {
          metrics::Registry::global()
              .counter("lanegate_camera_late_decisions_total",
                       "Opens decided after the camera's reply was sent (relay not pulsed)",
                       {{"device", device}})
              .inc();
          log::warn("lane decided to open after the camera's reply: its relay was not pulsed",
                    {{"DEVICE", device}});
        }
        return;
      }
      waiting->done = true;
      timer->cancel();
      HttpResponse resp;
      resp.body = lane::vzenith_reply(waiting->push, opened);
      waiting->reply(std::move(resp));
    };
    timer->async_wait([finish](const boost::system::error_code& ec) {
      if (!ec) finish(false, false);
    });
    read.on_decided = std::make_shared<lane::DecisionHook>(
        [finish](bool opened) { finish(opened, true); });
    sink.post(std::move(read));
  }

  // The answer to a push that does not wait for a decision.
  void answer(const Cam& cam, const lane::CameraPush& push, bool open, bool duplicate,
              Reply reply) {
    HttpResponse resp;
    if (cam.vendor == lane::CameraVendor::kVzenith) {
      resp.body = lane::vzenith_reply(push, open);
    } else {
      resp.body = json::serialize(json::object{{"accepted", true}, {"duplicate", duplicate}});
    }
    reply(std::move(resp));
  }
};

CameraReceiver::CameraReceiver(asio::io_context& io, const config::Config& config, Store& store,
                               EvidenceStore* evidence, lane::EventSink& sink, const Clock& clock)
    : impl_(std::make_shared<Impl>(io, config, store, evidence, sink, clock)) {}

CameraReceiver::~CameraReceiver() { stop(); }

void CameraReceiver::add_routes(HttpApi& api) {
  const std::int64_t limit = impl_->cfg.cameras.max_body_bytes;
  auto route = [&](std::string path, lane::CameraVendor vendor) {
    api.add_async_route(
        "POST", std::move(path), Access::open(),
        [w = std::weak_ptr<Impl>(impl_), vendor](const HttpRequest& req, Reply reply) {
          auto self = w.lock();
          if (!self) {
            return reply(HttpResponse::error(503, "stopping", "lanegated is stopping"));
          }
          self->handle(vendor, req, std::move(reply));
        },
        limit);
  };
  route("/anpr/vzenith", lane::CameraVendor::kVzenith);
  route("/anpr/hikvision", lane::CameraVendor::kHikvision);
  route("/NotificationInfo/TollgateInfo", lane::CameraVendor::kDahua);
  route("/NotificationInfo/KeepAlive", lane::CameraVendor::kDahua);
  route("/anpr/events", lane::CameraVendor::kGeneric);
}

void CameraReceiver::start() {
  impl_->running = true;
  impl_->arm_watchdog();
}

void CameraReceiver::stop() {
  impl_->running = false;
  impl_->watchdog.cancel();
}

void CameraReceiver::set_config(const config::Config& config) { impl_->load(config); }

bool CameraReceiver::owns(std::string_view device) const {
  return impl_->cams.find(device) != impl_->cams.end();
}

std::optional<lane::Health> CameraReceiver::health(std::string_view device) const {
  auto it = impl_->cams.find(device);
  if (it == impl_->cams.end()) return std::nullopt;
  return it->second.health;
}

void CameraReceiver::vehicle_seen(std::string_view device, bool missed) {
  auto it = impl_->cams.find(device);
  if (it == impl_->cams.end()) return;
  auto& cam = it->second;
  if (!missed) {
    cam.missed = 0;
    return;
  }
  ++cam.missed;
  const std::string detail = lane::count_missed_vehicle(cam.cfg.id, cam.missed);
  if (!detail.empty() && cam.health == lane::Health::kUp) {
    impl_->set_health(cam, lane::Health::kDegraded, detail);
  }
}

}  // namespace lanegate::gateway
