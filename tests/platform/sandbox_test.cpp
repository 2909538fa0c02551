// The sandbox, applied in forked children (it cannot be undone): Landlock alone, the seccomp filter
// alone, and Hearth's whole policy (chat_policy + confine_process, as `hearth run` and `hearth
// serve` apply it). A control child runs the same probes unconfined, to show that they can fail.
//
// A child reports each failed check as one line on a pipe and ends with "done", so a child that
// died, or was replaced by a successful execve, is seen as a failure too.
#include "platform/sandbox.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "platform/seccomp.h"

namespace hearth::platform {
namespace {
namespace fs = std::filesystem;

std::string errno_name(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : "errno " + std::to_string(err);
}

// The failed checks of one child, written to a pipe.
class Report {
 public:
  explicit Report(int fd) : fd_(fd) {}
  void fail(const std::string& what) { line(what); }
  void expect(bool ok, const std::string& what) {
    if (!ok) fail(what);
  }
  // Runs `call`, which must fail with errno `want`.
  template <typename F>
  void refused(const std::string& name, int want, F call) {
    errno = 0;
    const long rc = static_cast<long>(call());
    expect_errno(rc, errno, want, name);
  }
  // `rc` is a call's result and `err` its errno: the call must have failed with `want`.
  void expect_errno(long rc, int err, int want, const std::string& name) {
    if (rc >= 0)
      fail(name + " succeeded; expected " + errno_name(want));
    else if (err != want)
      fail(name + " failed with " + errno_name(err) + "; expected " + errno_name(want));
  }
  void line(const std::string& text) {
    const std::string l = text + "\n";
    if (::write(fd_, l.data(), l.size()) < 0) _exit(3);
  }

 private:
  int fd_;
};

// Runs `body` in a forked child. Returns the failed checks, one per line ("" when all passed), or
// how the child ended when it did not finish.
std::string in_child(const std::function<void(Report&)>& body,
                     const std::function<void()>& while_running = {}) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    ::close(p[0]);
    Report r(p[1]);
    body(r);
    r.line("done");
    _exit(0);
  }
  ::close(p[1]);
  if (while_running) while_running();
  std::string out;
  char buf[512];
  for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(p[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  const std::string done = "done\n";
  if (out.size() >= done.size() && out.compare(out.size() - done.size(), done.size(), done) == 0)
    out.resize(out.size() - done.size());
  else
    out += "the child did not finish its checks (exited or was replaced)\n";
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    out += "child ended with status " + std::to_string(status) + "\n";
  return out;
}

// A TCP listener on a free loopback port, made by the test before any confinement.
struct Listener {
  int fd = -1;
  sockaddr_in addr{};
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd, 4) != 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      ADD_FAILURE() << "cannot make a loopback listener: " << std::strerror(errno);
  }
  ~Listener() { ::close(fd); }
  sockaddr* sa() { return reinterpret_cast<sockaddr*>(&addr); }
};

// A scratch tree: models/ (read-only in the policy), data/ (read-write), outside/.
struct Tree {
  std::string root;
  Tree() {
    char tmpl[] = "/tmp/hearth-sandbox-XXXXXX";
    root = ::mkdtemp(tmpl);
    fs::create_directories(root + "/models");
    fs::create_directories(root + "/data");
    fs::create_directories(root + "/outside");
    std::ofstream(root + "/models/model.gguf") << "weights";
    std::ofstream(root + "/outside/secret") << "secret";
  }
  ~Tree() { fs::remove_all(root); }
};

// The parent's side of the accept check: connect, say "ping", expect "pong".
std::string ping(const sockaddr_in& addr) {
  const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  std::string got;
  if (::connect(c, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 &&
      ::send(c, "ping", 4, MSG_NOSIGNAL) == 4) {
    pollfd pfd{c, POLLIN, 0};
    char buf[8];
    if (::poll(&pfd, 1, 20000) == 1) {
      const ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n > 0) got.assign(buf, static_cast<size_t>(n));
    }
  }
  ::close(c);
  return got;
}

// The child's side: accept on the listener made before confinement, answer "pong".
void answer_ping(Report& r, int listener) {
  pollfd pfd{listener, POLLIN, 0};
  if (::poll(&pfd, 1, 20000) != 1) return r.fail("no connection to accept within 20 s");
  const int c = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (c < 0) return r.fail(std::string("accept4 on the bound socket: ") + std::strerror(errno));
  char buf[4];
  r.expect(::recv(c, buf, sizeof buf, MSG_WAITALL) == 4 && std::memcmp(buf, "ping", 4) == 0,
           "recv on the accepted socket");
  r.expect(::send(c, "pong", 4, MSG_NOSIGNAL) == 4, "send on the accepted socket");
  ::shutdown(c, SHUT_RDWR);
  ::close(c);
}

// What a confined process still does: threads, memory, randomness, files it may reach.
void check_runtime_works(Report& r, const std::string& writable_dir) {
  std::atomic<int> ran{0};
  std::thread t([&] { ran = 1; });
  t.join();
  r.expect(ran == 1, "a thread started after confinement did not run");
  void* m = ::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  r.expect(m != MAP_FAILED, "mmap");
  if (m != MAP_FAILED) {
    r.expect(::madvise(m, 1 << 20, MADV_DONTNEED) == 0, "madvise");
    r.expect(::mprotect(m, 1 << 20, PROT_READ) == 0, "mprotect");
    ::munmap(m, 1 << 20);
  }
  char rnd[16];
  r.expect(::getrandom(rnd, sizeof rnd, 0) == sizeof rnd, "getrandom");
  // What SQLite does with its database and journal.
  const std::string db = writable_dir + "/vault.db", journal = db + "-journal";
  const int fd = ::open(db.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  r.expect(fd >= 0,
           "create a file in the writable directory: " + std::string(std::strerror(errno)));
  if (fd >= 0) {
    struct flock lk {};
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET;
    r.expect(::fcntl(fd, F_SETLK, &lk) == 0, "fcntl lock");
    r.expect(::pwrite(fd, "page", 4, 4096) == 4, "pwrite");
    r.expect(::fsync(fd) == 0, "fsync");
    r.expect(::ftruncate(fd, 4096) == 0, "ftruncate");
    ::close(fd);
  }
  std::ofstream(journal) << "journal";
  r.expect(::rename(journal.c_str(), (journal + "2").c_str()) == 0, "rename in the data dir");
  r.expect(::unlink((journal + "2").c_str()) == 0, "unlink in the data dir");
}

// The calls the seccomp filter refuses, each done so that it cannot harm the machine when it is
// allowed, and so that it fails with something other than EPERM when unconfined. Calls `check(name,
// rc, errno, want_when_filtered)` for each.
void probe_refused_calls(const std::function<void(const std::string&, long, int, int)>& check,
                         const Listener& l) {
  auto call = [&](const std::string& name, int want, const std::function<long()>& f) {
    errno = 0;
    const long rc = f();
    const int err = errno;
    check(name, rc, err, want);
  };
  int sock = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC,
                      0);  // made before the filter
  call("socket(AF_INET)", EPERM, [] {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    if (s >= 0) ::close(s);
    return s;
  });
  call("socket(AF_UNIX)", EPERM, [] {
    const int s = ::socket(AF_UNIX, SOCK_DGRAM, 0);
    if (s >= 0) ::close(s);
    return s;
  });
  call("socketpair", EPERM, [] {
    int sv[2];
    const int rc = ::socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    if (rc == 0) ::close(sv[0]), ::close(sv[1]);
    return rc;
  });
  call("connect", EPERM,
       [&] { return ::connect(sock, reinterpret_cast<const sockaddr*>(&l.addr), sizeof l.addr); });
  ::close(sock);
  sock = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  call("bind", EPERM, [&] {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return ::bind(sock, reinterpret_cast<sockaddr*>(&a), sizeof a);
  });
  call("listen", EPERM, [&] { return ::listen(sock, 1); });
  ::close(sock);
  call("execve(/nonexistent)", EPERM, [] {
    char* const argv[] = {nullptr};
    return ::execve("/nonexistent/hearth-sandbox-test", argv, argv);
  });
  call("ptrace(PEEKDATA, parent)", EPERM,
       [] { return ::ptrace(PTRACE_PEEKDATA, ::getppid(), nullptr, nullptr); });
  call("process_vm_readv(self)", EPERM, [] {
    char a = 'x', b = 0;
    iovec local{&b, 1}, remote{&a, 1};
    return ::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0);
  });
  call("unshare(0)", EPERM, [] { return ::unshare(0); });
  call("setns(-1)", EPERM, [] { return ::setns(-1, 0); });
  call("clone(CLONE_NEWUSER)", EPERM, [] {
    const long pid = ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, 0);
    if (pid == 0) _exit(0);
    if (pid > 0) ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
    return pid;
  });
  call("clone3(size 0)", ENOSYS, [] { return ::syscall(SYS_clone3, nullptr, 0); });
  call("chroot(/nonexistent)", EPERM, [] { return ::chroot("/nonexistent/hearth"); });
  call("io_uring_setup(0)", EPERM, [] { return ::syscall(SYS_io_uring_setup, 0, nullptr); });
  call("perf_event_open(NULL)", EPERM,
       [] { return ::syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0); });
  call("userfaultfd(bad flags)", EPERM, [] { return ::syscall(SYS_userfaultfd, -1); });
  call("keyctl(bad op)", EPERM, [] { return ::syscall(SYS_keyctl, -1, 0, 0, 0, 0); });
}

// getpid through the i386 ABI (int 0x80; 20 is its getpid): the pid, or -errno.
long i386_getpid() {
  long rc = 20;
  asm volatile("int $0x80" : "+a"(rc) : : "memory", "r8", "r9", "r10", "r11");
  return rc;
}

// Whether this kernel runs i386 calls at all (some disable ia32 emulation).
bool i386_abi_works() {
  const pid_t pid = ::fork();
  if (pid == 0) _exit(i386_getpid() == ::getpid() ? 0 : 1);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST(Sandbox, LandlockConfinesFilesAndTcp) {
  const int abi = landlock_abi();
  if (abi == 0) GTEST_SKIP() << "this kernel has no Landlock (or it is disabled)";
  Tree t;
  Listener l;
  const std::string failed = in_child([&](Report& r) {
    SandboxPolicy p;
    p.read_only = {t.root + "/models"};
    p.read_write = {t.root + "/data"};
    auto st = apply_landlock(p);
    if (!st) return r.fail("apply_landlock: " + st.error());
    int fd = ::open((t.root + "/models/model.gguf").c_str(), O_RDONLY);
    r.expect(fd >= 0, "read the read-only model");
    ::close(fd);
    fd = ::open((t.root + "/data/vault.db").c_str(), O_RDWR | O_CREAT, 0600);
    r.expect(fd >= 0, "write the data dir");
    ::close(fd);
    r.refused("create in the read-only dir", EACCES,
              [&] { return ::open((t.root + "/models/new").c_str(), O_RDWR | O_CREAT, 0600); });
    r.refused("open outside the allowed paths", EACCES,
              [&] { return ::open((t.root + "/outside/secret").c_str(), O_RDONLY); });
    r.refused("open /etc/passwd", EACCES, [] { return ::open("/etc/passwd", O_RDONLY); });
    if (st->tcp_restricted) {
      const int c = ::socket(AF_INET, SOCK_STREAM, 0);
      r.refused("TCP connect", EACCES, [&] { return ::connect(c, l.sa(), sizeof l.addr); });
    }
  });
  EXPECT_EQ(failed, "") << "Landlock ABI " << abi;
  if (abi < 4) std::printf("[ Landlock ABI %d: no TCP rules in this kernel; not tested ]\n", abi);
}

TEST(Sandbox, LandlockRefusesWhileOtherThreadsRun) {
  if (landlock_abi() == 0) GTEST_SKIP() << "this kernel has no Landlock (or it is disabled)";
  const std::string failed = in_child([](Report& r) {
    std::atomic<bool> stop{false};
    std::thread t([&] {
      while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    auto st = apply_landlock(SandboxPolicy{});
    stop = true;
    t.join();
    r.expect(!st && st.error().find("threads are running") != std::string::npos,
             "apply_landlock with two threads: " + (st ? "succeeded" : st.error()));
  });
  EXPECT_EQ(failed, "");
}

TEST(Sandbox, MissingPathIsAnError) {
  if (landlock_abi() == 0) GTEST_SKIP() << "this kernel has no Landlock (or it is disabled)";
  const std::string failed = in_child([](Report& r) {
    SandboxPolicy p;
    p.read_only = {"/nonexistent/hearth/path"};
    auto st = apply_landlock(p);
    r.expect(!st && st.error().find("/nonexistent/hearth/path") != std::string::npos,
             "a missing path is not named in an error");
  });
  EXPECT_EQ(failed, "");
}

TEST(Sandbox, SeccompRefusesWithErrno) {
  if (!seccomp_available()) GTEST_SKIP() << "this kernel has no seccomp filters";
  Tree t;
  Listener l;
  const bool i386 = i386_abi_works();
  const std::string failed = in_child(
      [&](Report& r) {
        if (Status s = apply_seccomp_filter(); !s) return r.fail(s.error());
        probe_refused_calls([&](const std::string& name, long rc, int err,
                                int want) { r.expect_errno(rc, err, want, name); },
                            l);
        if (i386)
          r.expect(static_cast<int>(i386_getpid()) == -EPERM,
                   "getpid through int 0x80 was not refused");
        check_runtime_works(r, t.root + "/data");
        answer_ping(r, l.fd);
      },
      [&] { EXPECT_EQ(ping(l.addr), "pong"); });
  EXPECT_EQ(failed, "");
  if (!i386)
    std::printf(
        "[ this kernel runs no i386 calls; the other-ABI check is not "
        "done ]\n");
}

// Whether this process is already under a seccomp filter (a container's, say).
bool already_filtered() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Seccomp:", 0) == 0) return line.find('0') == std::string::npos;
  return false;
}

TEST(Sandbox, UnconfinedTheSameProbesDoNotFailWithThatErrno) {
  // The control: without the filter no probe fails with the errno the filter gives, so the checks
  // above can fail.
  if (already_filtered())
    GTEST_SKIP() << "this test runs under a seccomp filter already (a "
                    "container's?): the "
                    "unconfined control cannot be made here";
  Tree t;
  Listener l;
  const std::string failed = in_child([&](Report& r) {
    probe_refused_calls(
        [&](const std::string& name, long rc, int err, int want) {
          if (rc < 0 && err == want) r.fail(name + " failed with " + errno_name(err));
        },
        l);
    r.expect(::access("/etc/passwd", R_OK) == 0, "/etc/passwd is readable");
    check_runtime_works(r, t.root + "/data");
  });
  EXPECT_EQ(failed, "");
}

TEST(Sandbox, HearthPolicyInAChild) {
  const SandboxState support = sandbox_support();
  if (support.abi == 0 && !support.seccomp)
    GTEST_SKIP() << "this kernel has neither Landlock nor seccomp filters";
  Tree t;
  Listener l;
  const std::string failed = in_child(
      [&](Report& r) {
        const int pre = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);  // made before
        auto st = confine_process(chat_policy({t.root + "/models"}, t.root + "/data"));
        if (!st) return r.fail("confine_process: " + st.error());
        r.expect(st->fs_restricted == (support.abi > 0) &&
                     st->tcp_restricted == support.tcp_restricted &&
                     st->seccomp == support.seccomp && st->missing() == support.missing(),
                 "the state is not what sandbox_support() predicted: " + st->describe());
        // Allowed: the model (read and map), the data dir, /proc/self, threads, accept.
        const int fd = ::open((t.root + "/models/model.gguf").c_str(), O_RDONLY | O_CLOEXEC);
        r.expect(fd >= 0, "open the model read-only");
        void* m = fd >= 0 ? ::mmap(nullptr, 7, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
        r.expect(m != MAP_FAILED && std::memcmp(m, "weights", 7) == 0, "map the model");
        if (m != MAP_FAILED) ::munmap(m, 7);
        ::close(fd);
        r.expect(::access("/proc/self/status", R_OK) == 0, "read /proc/self/status");
        r.expect(::access("/proc/cpuinfo", R_OK) == 0, "read /proc/cpuinfo");
        check_runtime_works(r, t.root + "/data");
        answer_ping(r, l.fd);
        // Refused: files outside, writing the model, signals out, sockets, connect, bind, exec.
        if (st->fs_restricted) {
          r.refused("open a file outside the allowed paths", EACCES,
                    [&] { return ::open((t.root + "/outside/secret").c_str(), O_RDONLY); });
          r.refused("open /etc/passwd", EACCES, [] { return ::open("/etc/passwd", O_RDONLY); });
          r.refused("open the model for writing", EACCES,
                    [&] { return ::open((t.root + "/models/model.gguf").c_str(), O_WRONLY); });
        }
        if (st->scoped)
          r.refused("signal the parent", EPERM, [] { return ::kill(::getppid(), 0); });
        if (st->seccomp) {
          r.refused("socket(AF_INET)", EPERM, [] { return ::socket(AF_INET, SOCK_STREAM, 0); });
          r.refused("socket(AF_UNIX)", EPERM, [] { return ::socket(AF_UNIX, SOCK_STREAM, 0); });
        }
        if (st->seccomp || st->tcp_restricted) {
          const int net_errno = st->seccomp ? EPERM : EACCES;  // seccomp answers first
          r.refused("connect", net_errno, [&] { return ::connect(pre, l.sa(), sizeof l.addr); });
          sockaddr_in any = l.addr;
          any.sin_port = 0;
          r.refused("bind", net_errno,
                    [&] { return ::bind(pre, reinterpret_cast<sockaddr*>(&any), sizeof any); });
        }
        ::close(pre);
        if (st->seccomp || st->fs_restricted) {
          char* const argv[] = {const_cast<char*>("/bin/true"), nullptr};
          r.refused("execve(/bin/true)", st->seccomp ? EPERM : EACCES,
                    [&] { return ::execve("/bin/true", argv, environ); });
        }
      },
      [&] { EXPECT_EQ(ping(l.addr), "pong"); });
  EXPECT_EQ(failed, "") << support.describe();
  if (!support.missing().empty()) std::printf("[ not tested: %s ]\n", support.missing().c_str());
}

}  // namespace
}  // namespace hearth::platform
