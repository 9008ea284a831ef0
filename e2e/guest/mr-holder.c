// A process that registers one ordinary RDMA memory region on soft-RoCE (rdma_rxe) and holds
// it until SIGTERM, so the real-kernel suite can read a real `rdma resource show mr` table.
// libibverbs is loaded at run time (dlopen): the build machine needs no verbs headers, only
// the libibverbs1 that QEMU already depends on; the rxe provider comes with the guest.
//
//   mr-holder SIZE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

// Every verbs object is used through an opaque pointer; only the calls are declared.
typedef void **(*get_device_list_fn)(int *);
typedef void *(*open_device_fn)(void *);
typedef void *(*alloc_pd_fn)(void *);
typedef void *(*reg_mr_fn)(void *, void *, size_t, int);
#define IBV_ACCESS_LOCAL_WRITE 1

static void *need(void *lib, const char *name) {
  void *fn = dlsym(lib, name);
  if (!fn) {
    fprintf(stderr, "mr-holder: libibverbs has no %s\n", name);
    exit(1);
  }
  return fn;
}

int main(int argc, char **argv) {
  size_t size = argc > 1 ? strtoull(argv[1], NULL, 10) : 65536;
  void *lib = dlopen("libibverbs.so.1", RTLD_NOW);
  if (!lib) {
    fprintf(stderr, "mr-holder: %s\n", dlerror());
    return 1;
  }
  int n = 0;
  void **devices = ((get_device_list_fn)need(lib, "ibv_get_device_list"))(&n);
  if (!devices || n == 0) {
    fprintf(stderr, "mr-holder: no RDMA device (is an rxe link up, RDMAV_DRIVERS set?)\n");
    return 1;
  }
  void *ctx = ((open_device_fn)need(lib, "ibv_open_device"))(devices[0]);
  void *pd = ctx ? ((alloc_pd_fn)need(lib, "ibv_alloc_pd"))(ctx) : NULL;
  void *buf = malloc(size);
  void *mr = pd ? ((reg_mr_fn)need(lib, "ibv_reg_mr"))(pd, buf, size, IBV_ACCESS_LOCAL_WRITE) : NULL;
  if (!mr) {
    perror("mr-holder: ibv_reg_mr");
    return 1;
  }
  printf("READY pid=%d mrs=1 size=%zu\n", getpid(), size);
  fflush(stdout);
  for (;;) pause();
}
