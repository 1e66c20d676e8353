#include "devices/virtio_net.h"

#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ntc/error.h>

#include "eventfd.h"

namespace ntc::vmm {

MacAddress parse_mac(const std::string& text) {
    auto bad = [&] {
        return ntc::Error("bad MAC address '" + text + "' (want six hex bytes, e.g. 02:4e:54:00:00:01)");
    };
    if (text.size() != 17) throw bad();
    MacAddress mac{};
    for (size_t i = 0; i < 6; i++) {
        if (i && text[3 * i - 1] != ':') throw bad();
        if (!std::isxdigit(uint8_t(text[3 * i])) || !std::isxdigit(uint8_t(text[3 * i + 1]))) throw bad();
        mac[i] = uint8_t(std::stoul(text.substr(3 * i, 2), nullptr, 16));
    }
    if (mac == MacAddress{} || (mac[0] & 1)) throw ntc::Error("MAC address " + text + " is not a unicast address");
    return mac;
}

std::string format_mac(const MacAddress& mac) {
    char text[18];
    std::snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    return text;
}

MacAddress mac_for_id(const std::string& id) {
    uint32_t hash = 2166136261u;  // FNV-1a
    for (unsigned char c : id) hash = (hash ^ c) * 16777619u;
    return {0x02, 0x4e, 0x54, uint8_t(hash >> 16), uint8_t(hash >> 8), uint8_t(hash)};
}

VirtioNet::VirtioNet(int fd, MacAddress mac) : fd_(fd), mac_(mac), frame_(kMaxFrame) {}

VirtioNet::~VirtioNet() { stop_input(); }

std::vector<uint8_t> VirtioNet::config() const {
    virtio_net_config c{};
    std::memcpy(c.mac, mac_.data(), sizeof(c.mac));
    c.status = kStatusLinkUp;
    c.max_virtqueue_pairs = 1;
    auto bytes = reinterpret_cast<const uint8_t*>(&c);
    return {bytes, bytes + sizeof(c)};
}

bool VirtioNet::process(unsigned index, Virtqueue& queue) {
    return index == kRxQueue ? receive(queue) : transmit(queue);
}

bool VirtioNet::transmit(Virtqueue& queue) {
    bool used = false;
    while (auto chain = queue.pop()) {
        if (!chain->writable.empty()) throw GuestError("transmit buffer with a device-writable part");
        uint64_t length = total(chain->readable);
        if (length < kHeaderSize) throw GuestError("transmit buffer shorter than the virtio-net header");
        // The header asks for nothing (no offloads were offered); the frame
        // follows it.  A frame the wire cannot take is dropped, as a NIC would.
        if (length - kHeaderSize <= kMaxFrame) {
            auto frame = slice(chain->readable, kHeaderSize, length - kHeaderSize);
            ssize_t n;
            do n = ::writev(fd_, frame.data(), int(frame.size()));
            while (n < 0 && errno == EINTR);
        }
        queue.push_used(chain->head, 0);
        used = true;
    }
    return used;
}

bool VirtioNet::receive(Virtqueue& queue) {
    bool used = false;
    bool out_of_buffers = false;
    for (;;) {
        if (!pending_) {
            ssize_t n = ::read(fd_, frame_.data(), frame_.size());
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;  // EAGAIN: nothing waits
            pending_ = size_t(n);
        }
        auto chain = queue.pop();
        if (!chain) {
            out_of_buffers = true;
            break;
        }
        if (!chain->readable.empty()) throw GuestError("receive buffer with a device-readable part");
        uint64_t room = total(chain->writable);
        if (room < kHeaderSize) throw GuestError("receive buffer shorter than the virtio-net header");
        uint32_t written = 0;
        // A frame larger than the buffer is dropped; the buffer goes back
        // empty (the driver counts a length error).
        if (pending_ <= room - kHeaderSize) {
            virtio_net_hdr_v1 header{};
            header.num_buffers = 1;
            copy_to(chain->writable, &header, kHeaderSize);
            copy_to(slice(chain->writable, kHeaderSize, pending_), frame_.data(), pending_);
            written = uint32_t(kHeaderSize + pending_);
        }
        pending_ = 0;
        queue.push_used(chain->head, written);
        used = true;
    }
    if (blocked_.exchange(out_of_buffers) && !out_of_buffers) wake();
    return used;
}

void VirtioNet::wake() { signal_eventfd(wake_.get()); }

void VirtioNet::start_input(std::function<void()> deliver) {
    wake_ = make_eventfd("virtio-net's input thread");
    deliver_ = std::move(deliver);
    stopping_ = false;
    input_ = std::thread([this] { input_loop(); });
}

void VirtioNet::stop_input() {
    if (!input_.joinable()) return;
    stopping_ = true;
    wake();
    input_.join();
}

void VirtioNet::input_loop() {
    while (!stopping_) {
        pollfd fds[2] = {{wake_.get(), POLLIN, 0}, {fd_, short(blocked_ ? 0 : POLLIN), 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            std::perror("ntc-vmm: virtio-net: poll");
            return;
        }
        if (fds[0].revents & POLLIN) take_eventfd(wake_.get());
        if (stopping_) return;
        if (fds[1].revents & (POLLERR | POLLHUP | POLLNVAL)) {
            std::fprintf(stderr, "ntc-vmm: virtio-net: the TAP device failed; the guest receives no more frames\n");
            return;
        }
        if (fds[1].revents & POLLIN) {
            // Stays set unless receive() drains the descriptor: a driver that
            // is not ready yet is not polled for until it posts buffers.
            blocked_ = true;
            deliver_();
        }
    }
}

}  // namespace ntc::vmm
