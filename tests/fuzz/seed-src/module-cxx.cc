// A small C++ shared object for the ELF/DWARF fuzz seeds: a template method, an inlined helper, a C entry.
namespace ns { template <typename T> struct box { T v; __attribute__((noinline)) T get() const { return v * 2; } }; }
static inline int helper(int x) { ns::box<int> b{x}; return b.get() + 1; }
extern "C" int entry(int x) { return helper(x) + helper(x + 1); }
