// A CPU emulator of the CUDA driver API subset the engine binds
// (runtime/cuda/driver.go) running the kernels of gptoss.cu compiled as
// host C++: `make cuda-emu` builds bin/libcuda-emu.so, and the cuda-tagged
// tests run on it with GPTOSS_CUDA_LIB pointing there (see emu.h for how
// threads, warps, shared memory and cp.async are emulated). Streams run
// synchronously; a captured graph is the list of its operations, replayed
// in order; device memory is host memory, filled with 0xff (NaN) when
// allocated so that a read of unwritten memory shows, each buffer against
// an inaccessible page so that a read past its end faults. A fault (trap, a
// barrier not every live thread reaches, a shared address outside shared
// memory) fails the launch and, as on a GPU, every call after it.
#include "emu.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

// the kernels: gptoss.cu, or the emulator's own test (selftest.cu)
#ifndef EMU_KERNELS
#define EMU_KERNELS "../gptoss.cu"
#endif
#include EMU_KERNELS

// ---------------------------------------------------------------------------
// fibers

extern "C" void emu_swap(void** save, void* load);
asm(R"(
  .text
  .globl emu_swap
  .type emu_swap,@function
emu_swap:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_swap,.-emu_swap
)");

enum { RUNNABLE, AT_BLOCK, AT_WARP, AT_PDL, EXITED };
struct Copy {
  uint32_t dst;
  const void* src;
  int bytes;
};
struct EmuFiber {
  void* sp;
  uint3 tid;
  int state, warp, gen;
  bool waited;  // has passed pdl_wait (emu_pdl_wait)
  std::vector<std::vector<Copy>> groups;  // committed cp.async groups, oldest first
  std::vector<Copy> open;                 // copies not yet committed
};

EmuFiber* emu_cur;
uint3 emu_blockIdx;
dim3 emu_blockDim, emu_gridDim;
alignas(4096) char emu_dyn_shared[57 * 4096];  // ≥ 227 KB, whole pages
// static __shared__ storage (emu.h puts it in this section): poisoned
// before each block like the dynamic arena
extern "C" char __start_emu_shared[], __stop_emu_shared[];
__attribute__((section("emu_shared"), used)) static char emu_shared_anchor[16];
uintptr_t emu_shared_base = (uintptr_t)emu_dyn_shared - 0x80000000u;

static const size_t kStack = 256 << 10, kGuard = 4096, kMaxThreads = 1024;
static char* g_stacks;  // kMaxThreads × (guard + stack)
static EmuFiber g_fibers[kMaxThreads];
static void* g_sched_sp;
static std::function<void()> g_body;  // the kernel call every thread makes
static std::string g_fault;  // why the launch failed ("" while it runs)
struct Warp {
  uint64_t slot[2][32];
  int site[32];  // which warp operation (its source line) each waiting lane is at
  int gen;
};
static Warp g_warps[kMaxThreads / 32];

const uint3& emu_tid() { return emu_cur->tid; }

// The order warps, and a warp's lanes, run in (GPTOSS_EMU_ORDER): forward,
// reverse, or random (a new permutation each round, GPTOSS_EMU_SEED). A
// thread that reads shared memory another writes without a barrier between
// them sees the write in one order and not in another: the same test
// under the orders catches a missing barrier. Blocks run in the same
// order. GPTOSS_EMU_INTERLEAVE=1 moves to the next warp after each warp
// operation (instead of running a warp as far as it goes), so a plain
// read-modify-write that two warps race on shows. GPTOSS_EMU_CPASYNC=eager
// copies at cp.async instead of at the wait: a stage overwritten while a
// lane still reads it then shows.
static int g_order = -1;  // 0 forward, 1 reverse, 2 random
static bool g_eager, g_interleave, g_pdl_check;
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static int g_perm[2][kMaxThreads];
static void read_modes() {
  if (g_order >= 0) return;
  const char* o = getenv("GPTOSS_EMU_ORDER");
  g_order = o && !strcmp(o, "reverse") ? 1 : o && !strcmp(o, "random") ? 2 : 0;
  const char* e = getenv("GPTOSS_EMU_CPASYNC");
  g_eager = e && !strcmp(e, "eager");
  const char* il = getenv("GPTOSS_EMU_INTERLEAVE");
  g_interleave = il && !strcmp(il, "1");
  const char* pd = getenv("GPTOSS_EMU_PDL");
  g_pdl_check = pd && !strcmp(pd, "1");
  if (const char* sd = getenv("GPTOSS_EMU_SEED")) g_rng ^= strtoull(sd, nullptr, 10) * 0xbf58476d1ce4e5b9ull;
}
static uint64_t next_rand() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}
// the j-th of n (warps: which 0, lanes: which 1) in the mode's order
static int order_at(int j, int n, int which) {
  switch (g_order) {
    case 1: return n - 1 - j;
    case 2: {
      int* p = g_perm[which];
      if (j == 0) {  // a new permutation each round
        for (int i = 0; i < n; i++) p[i] = i;
        for (int i = n - 1; i > 0; i--) std::swap(p[i], p[next_rand() % (uint64_t)(i + 1)]);
      }
      return p[j];
    }
    default: return j;
  }
}


static void yield_to_scheduler() { emu_swap(&emu_cur->sp, g_sched_sp); }

static void fiber_main() {
  g_body();
  emu_cur->state = EXITED;
  yield_to_scheduler();
  abort();  // an exited fiber is never resumed
}

void __syncthreads() {
  emu_cur->state = AT_BLOCK;
  yield_to_scheduler();
}

const uint64_t* emu_warp_exchange(uint64_t v, int site) {
  Warp& w = g_warps[emu_cur->warp];
  int gen = w.gen;
  w.slot[gen & 1][emu_cur->tid.x & 31] = v;
  w.site[emu_cur->tid.x & 31] = site;
  emu_cur->state = AT_WARP;
  emu_cur->gen = gen;
  yield_to_scheduler();
  return w.slot[gen & 1];
}


[[noreturn]] static void fault(const std::string& why) {
  if (g_fault.empty()) g_fault = why;
  emu_cur->state = EXITED;
  yield_to_scheduler();
  abort();
}

void emu_fault(const char* why) { fault(why); }

void emu_trap() {
  char b[96];
  snprintf(b, sizeof b, "trap in block (%u,%u,%u) thread %u", emu_blockIdx.x, emu_blockIdx.y, emu_blockIdx.z,
           emu_cur->tid.x);
  fault(b);
}

static unsigned g_shmem;  // the launch's dynamic shared memory
static void check_shared(uint32_t a, int bytes) {
  uintptr_t p = emu_shared_base + a;
  if (p < (uintptr_t)emu_dyn_shared || p + bytes > (uintptr_t)emu_dyn_shared + g_shmem) {
    // static __shared__ storage is not in the arena: only the dynamic
    // arena is reached through cp.async here
    char b[96];
    snprintf(b, sizeof b, "cp.async to shared address %#x outside the launch's %u bytes of dynamic shared memory", a,
             g_shmem);
    fault(b);
  }
}

void emu_cp_async(uint32_t dst, const void* src, int bytes) {
  check_shared(dst, bytes);
  if (((uintptr_t)src & (bytes - 1)) || (dst & (bytes - 1))) fault("misaligned cp.async");
  if (g_eager)
    memcpy(emu_shared_ptr(dst), src, bytes);
  else
    emu_cur->open.push_back({dst, src, bytes});
}

void emu_cp_commit() {
  emu_cur->groups.push_back(std::move(emu_cur->open));
  emu_cur->open.clear();
}

void emu_cp_wait(int n) {
  auto& g = emu_cur->groups;
  while ((int)g.size() > n) {
    for (const Copy& c : g.front()) memcpy(emu_shared_ptr(c.dst), c.src, c.bytes);
    g.erase(g.begin());
  }
}

// ---------------------------------------------------------------------------
// programmatic dependent launch (GPTOSS_EMU_PDL=1)
//
// On a GPU a kernel launched with programmatic stream serialization may
// start while the kernel before it in the stream still runs (once every
// block of that one has called griddepcontrol.launch_dependents or ended),
// and until its griddepcontrol.wait returns, what the kernel before writes
// may or may not be there yet. Streams here are synchronous, so by default
// the code before a wait runs after the kernel before has ended, never
// beside it, and a kernel that reads an activation before its wait passes.
// With GPTOSS_EMU_PDL=1 the emulator shows the widest window instead:
//
//   - after every kernel it knows which bytes of device memory the kernel
//     changed (device memory is copied before the launch and compared
//     after; a changed byte marks its aligned 4-byte word);
//   - while a block of a PDL launch runs, those words of the kernel before
//     it read as 0xff (NaN, or -1 as an index: memory nothing wrote) until
//     its threads have passed their wait, and pdl_wait returns only when
//     no thread of the block can go on without it, so every load a thread
//     issues before its wait sees them hidden;
//   - a write before the wait (which the kernel before may still be
//     reading) into memory kernels write (an allocation some kernel has
//     changed: not the weights) by block 0 or the launch's first block
//     (the last in reverse order, any in random) fails the launch
//     (checking every block would need a copy of memory at each);
//   - if a thread of that kernel before called launch_dependents before its
//     own wait, the next kernel may overlap the one before that too, so
//     its words are hidden as well;
//   - an operation other than a kernel (a copy, a memset, an event) between
//     two kernels, or the start of a graph, ends the overlap.
//
// So a kernel that reads before its wait anything but what was there before
// the kernel before it (weights, or, with the launch_dependents after the
// wait that every kernel here makes, what the kernel two back wrote)
// computes garbage and its test fails, and one that writes before its wait
// fails.
struct Range {
  char* p;
  size_t n;
};
static bool g_launch_pdl;            // the running launch asked for PDL (and checking is on)
static bool g_early;                 // one of its threads called launch_dependents before its wait
static std::vector<Range> g_hidden;  // what its threads must not see before their wait
static std::vector<char> g_saved;    // those bytes, while they read as 0xff
static bool g_is_hidden;
struct LastKernel {
  bool valid = false, early = false;
  std::vector<Range> wrote, before;  // what it changed, and what the kernel before it changed
};
static LastKernel g_last;  // the stream's operation before, if it was a kernel

static bool g_first_block;  // the running block is its launch's first (memory at its start: g_before)
static bool g_check_block;  // writes before the wait are looked for in the running block
static std::string kernel_written_changed();
static void copy_kernel_written();
static void pdl_hide() {
  if (!g_launch_pdl) return;
  // writes before the wait are looked for in the launch's first block
  // (memory at its start: the copy taken before the launch) and in block
  // 0 (the one kernels give extra work: a copy at its start if not first)
  bool zero = emu_blockIdx.x == 0 && emu_blockIdx.y == 0 && emu_blockIdx.z == 0;
  g_check_block = g_first_block || zero;
  if (zero && !g_first_block) copy_kernel_written();
  g_saved.clear();
  for (const Range& r : g_hidden) {
    g_saved.insert(g_saved.end(), r.p, r.p + r.n);
    memset(r.p, 0xff, r.n);
  }
  g_is_hidden = true;
}
// the block's threads may go past their wait: "" or the write one made
// before it
static std::string pdl_show() {
  if (!g_is_hidden) return "";
  std::string why;
  size_t o = 0;
  for (const Range& r : g_hidden) {
    if (g_check_block && why.empty())
      for (size_t i = 0; i < r.n; i++)
        if ((unsigned char)r.p[i] != 0xff) {
          why = "wrote before its pdl_wait into what the kernel before wrote";
          break;
        }
    memcpy(r.p, g_saved.data() + o, r.n);
    o += r.n;
  }
  if (g_check_block && why.empty()) why = kernel_written_changed();
  g_is_hidden = false;
  if (!why.empty()) {
    char b[96];
    snprintf(b, sizeof b, "block (%u,%u,%u) ", emu_blockIdx.x, emu_blockIdx.y, emu_blockIdx.z);
    why = b + why + " (GPTOSS_EMU_PDL=1: the kernel before may still read or write it)";
  }
  return why;
}
// an operation other than a kernel on the stream: no overlap across it
static void pdl_break() { g_last.valid = false; }

void emu_pdl_wait() {
  if (!g_launch_pdl || emu_cur->waited) return;
  emu_cur->waited = true;
  emu_cur->state = AT_PDL;  // the scheduler lets it on once the block can go no further (run_block)
  yield_to_scheduler();
}

void emu_pdl_launch() {
  if (g_launch_pdl && !emu_cur->waited) g_early = true;
}

static void init_stacks() {
  if (g_stacks) return;
  size_t per = kGuard + kStack;
  g_stacks = (char*)mmap(nullptr, per * kMaxThreads, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                         -1, 0);
  if (g_stacks == MAP_FAILED) {
    perror("emu: stacks");
    abort();
  }
  for (size_t i = 0; i < kMaxThreads; i++) mprotect(g_stacks + i * per, kGuard, PROT_NONE);
}

// runs one block of n threads to completion; "" or why it faulted
static std::string run_block(int n) {
  size_t per = kGuard + kStack;
  for (int i = 0; i < n; i++) {
    EmuFiber& f = g_fibers[i];
    f.tid = {(unsigned)i % emu_blockDim.x, (unsigned)i / emu_blockDim.x % emu_blockDim.y,
             (unsigned)i / (emu_blockDim.x * emu_blockDim.y)};
    f.state = RUNNABLE;
    f.waited = false;
    f.warp = i / 32;
    f.groups.clear();
    f.open.clear();
    // the first switch "returns" into fiber_main with the stack as after a call
    uintptr_t top = (uintptr_t)(g_stacks + i * per + per) & ~(uintptr_t)15;
    void** sp = (void**)(top - 64);
    memset(sp, 0, 64);
    sp[6] = (void*)&fiber_main;
    f.sp = sp;
  }
  for (int w = 0; w < (n + 31) / 32; w++) g_warps[w].gen = 0;
  g_fault.clear();
  int nw = (n + 31) / 32;
  for (;;) {
    // warp by warp (in the mode's order), each as far as it goes: its
    // lanes run (in the mode's order) until each blocks, its warp
    // operations complete as soon as all its live lanes are there, and it
    // stops at __syncthreads or its end. So one warp runs ahead of the
    // others as far as CUDA allows, the widest skew between warps.
    bool ran = false;
    for (int wj = 0; wj < nw; wj++) {
      int w = order_at(wj, nw, 0);
      int lo = w * 32, hi = std::min(n, lo + 32);
      for (;;) {
        bool any = false;
        for (int j = 0; j < hi - lo; j++) {
          int i = lo + order_at(j, hi - lo, 1);
          if (g_fibers[i].state != RUNNABLE) continue;
          emu_cur = &g_fibers[i];
          emu_swap(&g_sched_sp, g_fibers[i].sp);
          any = true;
          if (!g_fault.empty()) return g_fault;
        }
        int alive = 0, waiting = 0;
        for (int i = lo; i < hi; i++) {
          alive += g_fibers[i].state != EXITED;
          waiting += g_fibers[i].state == AT_WARP;
        }
        if (waiting && waiting == alive) {
          Warp& wp = g_warps[w];
          int site = -1;
          for (int i = lo; i < hi; i++) {
            int l = i - lo;
            if (g_fibers[i].state == EXITED) {
              wp.slot[wp.gen & 1][l] = ~0ull;  // an exited lane has no value: garbage, not a stale one
            } else if (site < 0) {
              site = wp.site[l];
            } else if (wp.site[l] != site) {
              char b[128];
              snprintf(b, sizeof b, "block (%u,%u,%u) warp %d: lanes at different warp operations", emu_blockIdx.x,
                       emu_blockIdx.y, emu_blockIdx.z, w);
              return b;
            }
          }
          for (int l = hi - lo; l < 32; l++) wp.slot[wp.gen & 1][l] = ~0ull;
          wp.gen++;
          for (int i = lo; i < hi; i++)
            if (g_fibers[i].state == AT_WARP) g_fibers[i].state = RUNNABLE;
          any = true;
          if (g_interleave) {
            ran = true;
            break;
          }
        }
        if (!any) break;
        ran = true;
      }
    }
    int live = 0, atBlock = 0, atPdl = 0;
    for (int i = 0; i < n; i++) {
      live += g_fibers[i].state != EXITED;
      atBlock += g_fibers[i].state == AT_BLOCK;
      atPdl += g_fibers[i].state == AT_PDL;
    }
    if (live == 0) return "";
    if (atBlock == live) {
      for (int i = 0; i < n; i++)
        if (g_fibers[i].state == AT_BLOCK) g_fibers[i].state = RUNNABLE;
      continue;
    }
    if (!ran && atPdl) {
      // nothing in the block goes on without its wait (the latest it can
      // return): the kernel before has ended and its writes show
      std::string why = pdl_show();
      if (!why.empty()) return why;
      for (int i = 0; i < n; i++)
        if (g_fibers[i].state == AT_PDL) g_fibers[i].state = RUNNABLE;
      continue;
    }
    if (!ran) {
      char b[160];
      snprintf(b, sizeof b,
               "block (%u,%u,%u): %d live threads, %d at __syncthreads, the others at a warp operation their warp's "
               "other lanes do not reach",
               emu_blockIdx.x, emu_blockIdx.y, emu_blockIdx.z, live, atBlock);
      return b;
    }
  }
}

// A kernel that reads past a buffer (or through a garbage index) faults the
// process: before the handler that was there (Go's, or the default) takes
// the signal, this one says which kernel, block and thread it was in.
static const char* g_kernel;  // the running launch's kernel
static struct sigaction g_old_segv, g_old_bus;
static volatile sig_atomic_t g_noting;  // fault_note is installed
static void fault_note(int sig, siginfo_t*, void*) {
  if (g_kernel && emu_cur) {
    char b[512];
    int n = snprintf(b, sizeof b, "emu: %s in kernel %s, block (%u,%u,%u), thread %u%s\n",
                     sig == SIGSEGV ? "SIGSEGV" : "SIGBUS", g_kernel, emu_blockIdx.x, emu_blockIdx.y, emu_blockIdx.z,
                     emu_cur->tid.x,
                     g_pdl_check ? " (GPTOSS_EMU_PDL=1: every PDL launch runs with what the kernel before it wrote "
                                   "hidden until its wait; if this passes without, this kernel or one before it reads "
                                   "such a value before its wait and uses it)"
                                 : "");
    (void)!write(2, b, (size_t)std::min(n, (int)sizeof b - 1));
  }
  // the faulting instruction runs again and faults to the handler before
  sigaction(SIGSEGV, &g_old_segv, nullptr);
  sigaction(SIGBUS, &g_old_bus, nullptr);
  g_noting = 0;
}
// (again at each launch if a fault outside the kernels took it out)
static void install_fault_note() {
  if (g_noting) return;
  g_noting = 1;
  struct sigaction sa = {};
  sa.sa_sigaction = fault_note;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_old_segv);
  sigaction(SIGBUS, &sa, &g_old_bus);
}

// ---------------------------------------------------------------------------
// kernels: name → a launcher that reads the kernel's typed arguments from
// the driver's params array

struct Kernel {
  const char* name;
  // the call every thread makes, with the argument values copied now
  std::function<std::function<void()>(void**)> bind;
};

template <class... A, size_t... I>
static std::function<void()> bind_args(void (*f)(A...), void** params, std::index_sequence<I...>) {
  std::tuple<std::decay_t<A>...> args{*(std::decay_t<A>*)params[I]...};
  return [f, args]() { std::apply(f, args); };
}
template <class... A>
static Kernel kernel(const char* name, void (*f)(A...)) {
  return {name, [f](void** params) { return bind_args(f, params, std::index_sequence_for<A...>{}); }};
}

static const std::vector<Kernel>& kernels() {
  static const std::vector<Kernel> k = {
#define EMU_KERNEL(name) kernel(#name, &name),
#include "kernels.inc"
#undef EMU_KERNEL
  };
  return k;
}

// ---------------------------------------------------------------------------
// the driver API

typedef int CUresult;
enum {
  OK = 0,
  ERR_INVALID_VALUE = 1,
  ERR_OUT_OF_MEMORY = 2,
  ERR_NOT_FOUND = 500,
  ERR_LAUNCH_FAILED = 719,
};

static std::mutex g_mu;  // one launch at a time (the emulator's state is global)
static CUresult g_sticky = OK;
static size_t g_used;
static const size_t kTotal = (size_t)80 << 30;

struct Op {
  std::function<CUresult()> run;
};
struct Graph {
  std::vector<Op> ops;
};
static std::map<uintptr_t, Graph*> g_capturing;  // stream → the graph it records

static int env_int(const char* name, int def) {
  const char* v = getenv(name);
  return v && *v ? atoi(v) : def;
}

// device memory (cuMemAlloc_v2): start → its mapping
struct Mapping {
  char* base;
  size_t len, size;
};
static std::map<uintptr_t, Mapping> g_maps;

// With GPTOSS_EMU_PDL=1: device memory as it was before the running launch,
// and the words the launch changed (see "programmatic dependent launch").
static std::map<uintptr_t, std::vector<char>> g_before;

// The allocations kernels have written (activations, caches; not the
// weights, which only copies write), where a write before a wait is looked
// for: "" or which byte changed since the launch began.
static std::set<uintptr_t> g_kernel_written;
static std::map<uintptr_t, std::vector<char>> g_block_copy;  // at block 0's start, if not first
static void copy_kernel_written() {
  g_block_copy.clear();
  for (uintptr_t p : g_kernel_written) g_block_copy[p].assign((const char*)p, (const char*)p + g_before[p].size());
}
static std::string kernel_written_changed() {
  const auto& ref = g_first_block ? g_before : g_block_copy;
  for (uintptr_t p : g_kernel_written) {
    auto b = ref.find(p);
    if (b == ref.end() || !memcmp((const void*)p, b->second.data(), b->second.size())) continue;
    size_t i = 0;
    while (((const char*)p)[i] == b->second[i]) i++;
    char w[128];
    snprintf(w, sizeof w, "wrote byte %zu of a %zu-byte buffer before its pdl_wait", i, b->second.size());
    return w;
  }
  return "";
}
static void pdl_snapshot() {
  for (auto it = g_before.begin(); it != g_before.end();)
    it = g_maps.count(it->first) ? std::next(it) : g_before.erase(it);
  for (auto it = g_kernel_written.begin(); it != g_kernel_written.end();)
    it = g_maps.count(*it) ? std::next(it) : g_kernel_written.erase(it);
  for (const auto& [p, m] : g_maps) g_before[p].assign((const char*)p, (const char*)p + m.size);
}
static std::vector<Range> pdl_changed() {
  std::vector<Range> r;
  for (const auto& [p, b] : g_before) {
    char* a = (char*)p;
    size_t n = b.size();
    for (size_t i = 0; i < n; i += 4096) {
      size_t end = std::min(n, i + 4096);
      if (!memcmp(a + i, b.data() + i, end - i)) continue;
      g_kernel_written.insert(p);
      for (size_t j = i; j < end; j += 4) {  // the word of a changed byte (allocations are 256-byte aligned)
        size_t w = std::min<size_t>(4, end - j);
        if (!memcmp(a + j, b.data() + j, w)) continue;
        if (!r.empty() && r.back().p + r.back().n == a + j)
          r.back().n += w;
        else
          r.push_back({a + j, w});
      }
    }
  }
  return r;
}

static CUresult launch(const Kernel* k, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                       unsigned shmem, bool pdl, std::function<void()> body) {
  if (g_sticky) return g_sticky;
  int n = (int)(bx * by * bz);
  if (n <= 0 || n > (int)kMaxThreads || gx == 0 || gy == 0 || gz == 0) return ERR_INVALID_VALUE;
  init_stacks();
  read_modes();
  g_body = std::move(body);
  g_shmem = shmem;
  emu_blockDim = {bx, by, bz};
  emu_gridDim = {gx, gy, gz};
  // the dynamic shared memory past the launch's size is inaccessible
  size_t open = (shmem + 4095) & ~(size_t)4095;
  mprotect(emu_dyn_shared + open, sizeof emu_dyn_shared - open, PROT_NONE);
  size_t nb = (size_t)gx * gy * gz;
  std::vector<size_t> blocks(nb);
  for (size_t i = 0; i < nb; i++) blocks[i] = g_order == 1 ? nb - 1 - i : i;
  if (g_order == 2)
    for (size_t i = nb - 1; i > 0 && nb > 1; i--) std::swap(blocks[i], blocks[next_rand() % (i + 1)]);
  g_launch_pdl = g_pdl_check && pdl;
  install_fault_note();
  g_kernel = k->name;
  g_early = false;
  g_hidden.clear();
  if (g_launch_pdl && g_last.valid) {
    g_hidden = g_last.wrote;
    if (g_last.early) g_hidden.insert(g_hidden.end(), g_last.before.begin(), g_last.before.end());
  }
  if (g_pdl_check) pdl_snapshot();
  CUresult r = OK;
  g_first_block = true;
  for (size_t b : blocks) {
    emu_blockIdx = {(unsigned)(b % gx), (unsigned)(b / gx % gy), (unsigned)(b / ((size_t)gx * gy))};
    // a block's shared memory starts as garbage (NaN), not as what the
    // block before left
    memset(emu_dyn_shared, 0xff, shmem);
    memset(__start_emu_shared, 0xff, __stop_emu_shared - __start_emu_shared);
    pdl_hide();
    std::string why = run_block(n);
    std::string early = pdl_show();  // (if its threads never waited)
    if (why.empty()) why = early;
    g_first_block = false;
    if (!why.empty()) {
      fprintf(stderr, "emu: %s: %s\n", k->name, why.c_str());
      g_sticky = r = ERR_LAUNCH_FAILED;
      break;
    }
  }
  mprotect(emu_dyn_shared + open, sizeof emu_dyn_shared - open, PROT_READ | PROT_WRITE);
  if (g_pdl_check) {
    std::vector<Range> w = pdl_changed();
    g_last.before = std::move(g_last.wrote);
    g_last.wrote = std::move(w);
    g_last.early = g_launch_pdl && g_early;
    g_last.valid = true;
  }
  g_launch_pdl = false;
  g_kernel = nullptr;
  return r;
}

// runs op now, or records it when the stream captures
// (an operation other than a kernel — a copy, memset, event or a graph's
// start — ends the overlap of programmatic dependent launch: pdl_break)
static CUresult enqueue(uintptr_t s, std::function<CUresult()> op, bool kernel = false) {
  if (!kernel)
    op = [op = std::move(op)]() {
      pdl_break();
      return op();
    };
  std::lock_guard<std::mutex> l(g_mu);
  if (g_sticky) return g_sticky;
  auto it = g_capturing.find(s);
  if (it != g_capturing.end()) {
    it->second->ops.push_back({op});
    return OK;
  }
  return op();
}

extern "C" {

CUresult cuInit(unsigned) { return OK; }
CUresult cuDriverGetVersion(int* v) {
  *v = 12080;
  return OK;
}
CUresult cuDeviceGetCount(int* n) {
  *n = 1;
  return OK;
}
CUresult cuDeviceGet(int* d, int ordinal) {
  if (ordinal != 0) return ERR_INVALID_VALUE;
  *d = 0;
  return OK;
}
CUresult cuDeviceGetAttribute(int* v, int attr, int) {
  switch (attr) {
    case 16: *v = env_int("GPTOSS_EMU_SMS", 4); break;  // multiprocessors
    case 75: *v = 9; break;                            // compute capability
    case 76: *v = 0; break;
    default: *v = 0;
  }
  return OK;
}
CUresult cuDeviceGetName(char* name, int n, int) {
  snprintf(name, n, "gptoss CPU emulator (sm_90)");
  return OK;
}
CUresult cuDevicePrimaryCtxRetain(uintptr_t* c, int) {
  *c = 1;
  return OK;
}
CUresult cuCtxSetCurrent(uintptr_t) { return OK; }
CUresult cuCtxSynchronize() { return g_sticky; }
CUresult cuMemGetInfo_v2(size_t* free_, size_t* total) {
  std::lock_guard<std::mutex> l(g_mu);
  *total = kTotal;
  *free_ = kTotal - g_used;
  return OK;
}
// Device memory: each allocation ends (rounded up to 256 bytes, the
// driver's granule) right before an inaccessible page, and freeing unmaps
// it, so a kernel that reads or writes past its buffer, or a freed one,
// faults the process (SIGSEGV) instead of reading a neighbour.
CUresult cuMemAlloc_v2(uint64_t* p, size_t size) {
  std::lock_guard<std::mutex> l(g_mu);
  if (g_used + size > kTotal) return ERR_OUT_OF_MEMORY;
  size_t r = (std::max(size, (size_t)1) + 255) & ~(size_t)255, data = (r + 4095) & ~(size_t)4095;
  char* base = (char*)mmap(nullptr, data + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                           -1, 0);
  if (base == MAP_FAILED) return ERR_OUT_OF_MEMORY;
  mprotect(base + data, 4096, PROT_NONE);
  char* m = base + data - r;
  memset(base, 0xff, data);  // NaN: a read of memory nothing wrote (or just before the buffer) shows
  g_maps[(uintptr_t)m] = {base, data + 4096, size};
  g_used += size;
  *p = (uint64_t)m;
  return OK;
}
CUresult cuMemFree_v2(uint64_t p) {
  std::lock_guard<std::mutex> l(g_mu);
  auto it = g_maps.find((uintptr_t)p);
  if (it == g_maps.end()) return ERR_INVALID_VALUE;
  g_used -= it->second.size;
  munmap(it->second.base, it->second.len);
  g_maps.erase(it);
  return OK;
}
CUresult cuMemAllocHost_v2(void** p, size_t size) {
  *p = aligned_alloc(4096, (size + 4095) & ~(size_t)4095);
  return *p ? OK : ERR_OUT_OF_MEMORY;
}
CUresult cuMemFreeHost(void* p) {
  free(p);
  return OK;
}
CUresult cuMemcpyHtoDAsync_v2(uint64_t dst, const void* src, size_t n, uintptr_t s) {
  return enqueue(s, [=]() { memcpy((void*)dst, src, n); return OK; });
}
CUresult cuMemcpyDtoHAsync_v2(void* dst, uint64_t src, size_t n, uintptr_t s) {
  return enqueue(s, [=]() { memcpy(dst, (const void*)src, n); return OK; });
}
CUresult cuMemcpyDtoDAsync_v2(uint64_t dst, uint64_t src, size_t n, uintptr_t s) {
  return enqueue(s, [=]() { memmove((void*)dst, (const void*)src, n); return OK; });
}
CUresult cuMemsetD8Async(uint64_t dst, unsigned char v, size_t n, uintptr_t s) {
  return enqueue(s, [=]() { memset((void*)dst, v, n); return OK; });
}
CUresult cuStreamCreate(uintptr_t* s, unsigned) {
  static uintptr_t next = 1;
  std::lock_guard<std::mutex> l(g_mu);
  *s = next++;
  return OK;
}
CUresult cuStreamDestroy_v2(uintptr_t) { return OK; }
CUresult cuStreamSynchronize(uintptr_t s) {
  std::lock_guard<std::mutex> l(g_mu);
  if (g_capturing.count(s)) return 900;  // CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
  return g_sticky;
}
CUresult cuStreamWaitEvent(uintptr_t, uintptr_t, unsigned) { return OK; }
struct Event {
  double t;
};
static double now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
CUresult cuEventCreate(uintptr_t* e, unsigned) {
  *e = (uintptr_t) new Event{0};
  return OK;
}
CUresult cuEventDestroy_v2(uintptr_t e) {
  delete (Event*)e;
  return OK;
}
CUresult cuEventRecord(uintptr_t e, uintptr_t s) {
  return enqueue(s, [=]() { ((Event*)e)->t = now_ms(); return OK; });
}
CUresult cuEventSynchronize(uintptr_t) { return g_sticky; }
CUresult cuEventElapsedTime(float* ms, uintptr_t a, uintptr_t b) {
  *ms = (float)(((Event*)b)->t - ((Event*)a)->t);
  return OK;
}
CUresult cuModuleLoadData(uintptr_t* m, const void*) {
  *m = 1;
  return OK;
}
CUresult cuModuleGetFunction(uintptr_t* f, uintptr_t, const char* name) {
  for (const Kernel& k : kernels())
    if (strcmp(k.name, name) == 0) {
      *f = (uintptr_t)&k;
      return OK;
    }
  fprintf(stderr, "emu: no kernel %s (kernels.inc is made from gptoss.cu's extern \"C\" kernels)\n", name);
  return ERR_NOT_FOUND;
}
CUresult cuModuleUnload(uintptr_t) { return OK; }
CUresult cuModuleGetGlobal_v2(uint64_t*, size_t*, uintptr_t, const char*) { return ERR_NOT_FOUND; }
CUresult cuFuncSetAttribute(uintptr_t, int, int) { return OK; }
CUresult cuOccupancyMaxActiveBlocksPerMultiprocessor(int* n, uintptr_t, int block, size_t) {
  *n = std::max(1, std::min(2, 2048 / std::max(block, 1)));
  return OK;
}
static CUresult launch_op(uintptr_t f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                          unsigned shmem, uintptr_t s, void** params, bool pdl) {
  const Kernel* k = (const Kernel*)f;
  // what the GPU refuses at launch, refused here whether or not captured
  if (shmem > sizeof emu_dyn_shared || (uint64_t)bx * by * bz > kMaxThreads || bx * by * bz == 0 || bz > 64 ||
      gx == 0 || gy == 0 || gz == 0 || gy > 65535 || gz > 65535)
    return ERR_INVALID_VALUE;
  std::function<void()> body = k->bind(params);
  return enqueue(s, [=]() { return launch(k, gx, gy, gz, bx, by, bz, shmem, pdl, body); }, true);
}
CUresult cuLaunchKernel(uintptr_t f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shmem, uintptr_t s, void** params, void**) {
  return launch_op(f, gx, gy, gz, bx, by, bz, shmem, s, params, false);
}
struct LaunchConfig {
  unsigned gx, gy, gz, bx, by, bz, shmem;
  uintptr_t stream;
  const void* attrs;  // CUlaunchAttribute[nattrs]: an id, 4 bytes of padding, a 64-byte value
  unsigned nattrs;
};
CUresult cuLaunchKernelEx(const LaunchConfig* c, uintptr_t f, void** params, void**) {
  bool pdl = false;
  for (unsigned i = 0; i < c->nattrs; i++) {
    const char* a = (const char*)c->attrs + 72 * i;
    int id, allowed;
    memcpy(&id, a, 4);
    memcpy(&allowed, a + 8, 4);
    if (id == 6) pdl = allowed != 0;  // CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
  }
  return launch_op(f, c->gx, c->gy, c->gz, c->bx, c->by, c->bz, c->shmem, c->stream, params, pdl);
}
CUresult cuStreamBeginCapture_v2(uintptr_t s, int) {
  std::lock_guard<std::mutex> l(g_mu);
  if (g_capturing.count(s)) return ERR_INVALID_VALUE;
  g_capturing[s] = new Graph;
  return OK;
}
CUresult cuStreamEndCapture(uintptr_t s, uintptr_t* g) {
  std::lock_guard<std::mutex> l(g_mu);
  auto it = g_capturing.find(s);
  if (it == g_capturing.end()) return ERR_INVALID_VALUE;
  *g = (uintptr_t)it->second;
  g_capturing.erase(it);
  return OK;
}
CUresult cuGraphInstantiateWithFlags(uintptr_t* e, uintptr_t g, unsigned long long) {
  *e = (uintptr_t) new Graph(*(Graph*)g);
  return OK;
}
CUresult cuGraphLaunch(uintptr_t e, uintptr_t s) {
  Graph* g = (Graph*)e;
  return enqueue(s, [g]() {
    for (const Op& op : g->ops)
      if (CUresult r = op.run()) return r;
    return g_sticky;
  });
}
CUresult cuGraphExecDestroy(uintptr_t e) {
  delete (Graph*)e;
  return OK;
}
CUresult cuGraphDestroy(uintptr_t g) {
  delete (Graph*)g;
  return OK;
}
CUresult cuGetErrorName(CUresult r, const char** s) {
  switch (r) {
    case ERR_INVALID_VALUE: *s = "CUDA_ERROR_INVALID_VALUE"; break;
    case ERR_OUT_OF_MEMORY: *s = "CUDA_ERROR_OUT_OF_MEMORY"; break;
    case ERR_NOT_FOUND: *s = "CUDA_ERROR_NOT_FOUND"; break;
    case ERR_LAUNCH_FAILED: *s = "CUDA_ERROR_LAUNCH_FAILED"; break;
    default: *s = "CUDA_ERROR_UNKNOWN";
  }
  return OK;
}
CUresult cuGetErrorString(CUresult r, const char** s) {
  *s = r == ERR_LAUNCH_FAILED ? "a kernel faulted in the CPU emulator (its message is on stderr)" : "emulator error";
  return OK;
}

}  // extern "C"

#ifdef EMU_MAIN
#include EMU_MAIN
#endif
