// A process that holds real dma-bufs for the real-kernel suite: it exports a vgem dumb buffer
// through PRIME, names it, maps it, hands it to others over a unix socket, and holds on until
// SIGTERM, printing one READY line that says exactly what it holds (the suite's ground truth).
//
//   dmabuf-holder export NAME|- SIZE [--map] [--close-fd] [--close-device] [--serve SOCKET]
//   dmabuf-holder import SOCKET [--map] [--close-fd]
//
// Static (gcc -static): the guest's initramfs has busybox and nothing else.
#include <errno.h>
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/ioctl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

// The DRM uapi structs this program needs (include/uapi/drm/drm.h, drm_mode.h); the headers
// come with libdrm-dev, which the build machine need not have.
struct drm_mode_create_dumb {
  uint32_t height, width, bpp, flags;
  uint32_t handle, pitch;
  uint64_t size;
};
struct drm_prime_handle {
  uint32_t handle, flags;
  int32_t fd;
};
struct drm_gem_close {
  uint32_t handle, pad;
};
#define DRM_IOCTL_BASE 'd'
#define DRM_IOCTL_GEM_CLOSE _IOW(DRM_IOCTL_BASE, 0x09, struct drm_gem_close)
#define DRM_IOCTL_PRIME_HANDLE_TO_FD _IOWR(DRM_IOCTL_BASE, 0x2d, struct drm_prime_handle)
#define DRM_IOCTL_MODE_CREATE_DUMB _IOWR(DRM_IOCTL_BASE, 0xB2, struct drm_mode_create_dumb)
#define DRM_RDWR O_RDWR

static void die(const char *what) {
  fprintf(stderr, "dmabuf-holder: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int has(int argc, char **argv, const char *flag) {
  for (int i = 0; i < argc; i++)
    if (strcmp(argv[i], flag) == 0) return 1;
  return 0;
}

static const char *value(int argc, char **argv, const char *flag) {
  for (int i = 0; i + 1 < argc; i++)
    if (strcmp(argv[i], flag) == 0) return argv[i + 1];
  return NULL;
}

static int open_card(void) {
  char path[64];
  for (int i = 0; i < 16; i++) {
    snprintf(path, sizeof path, "/dev/dri/card%d", i);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd >= 0) return fd;
  }
  die("open /dev/dri/card*");
  return -1;
}

static void send_fd(int sock, int fd) {
  char byte = 'f';
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  char control[CMSG_SPACE(sizeof(int))];
  memset(control, 0, sizeof control);
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                       .msg_controllen = sizeof control};
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  if (sendmsg(sock, &msg, 0) != 1) die("sendmsg");
}

static int recv_fd(int sock) {
  char byte;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  char control[CMSG_SPACE(sizeof(int))];
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                       .msg_controllen = sizeof control};
  if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1) die("recvmsg");
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
  if (!cmsg || cmsg->cmsg_type != SCM_RIGHTS) {
    errno = EPROTO;
    die("no fd in the message");
  }
  int fd;
  memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
  return fd;
}

static struct sockaddr_un socket_address(const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
  return addr;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: dmabuf-holder export NAME SIZE [--map] [--close-fd] [--close-device] "
                    "[--serve SOCKET] | import SOCKET [--map] [--close-fd]\n");
    return 2;
  }
  // Exit on SIGTERM by default action; ignore SIGPIPE from a client that went away.
  signal(SIGPIPE, SIG_IGN);
  int card = -1, buf;
  size_t size;
  uint32_t handle = 0;
  if (strcmp(argv[1], "export") == 0 && argc >= 4) {
    size = strtoull(argv[3], NULL, 10);
    card = open_card();
    // A dumb buffer of width x 1 pixels at 8 bpp is exactly `size` bytes (page-rounded).
    struct drm_mode_create_dumb dumb = {.height = 1, .width = (uint32_t)size, .bpp = 8};
    if (ioctl(card, DRM_IOCTL_MODE_CREATE_DUMB, &dumb) < 0) die("DRM_IOCTL_MODE_CREATE_DUMB");
    handle = dumb.handle;
    size = dumb.size;
    struct drm_prime_handle prime = {.handle = handle, .flags = O_CLOEXEC | DRM_RDWR, .fd = -1};
    if (ioctl(card, DRM_IOCTL_PRIME_HANDLE_TO_FD, &prime) < 0) die("DRM_IOCTL_PRIME_HANDLE_TO_FD");
    buf = prime.fd;
    // "-" leaves the buffer unnamed (fdinfo then has no name line, bufinfo says <none>).
    if (strcmp(argv[2], "-") != 0 && ioctl(buf, DMA_BUF_SET_NAME, argv[2]) < 0)
      die("DMA_BUF_SET_NAME");
  } else if (strcmp(argv[1], "import") == 0) {
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = socket_address(argv[2]);
    if (connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
    buf = recv_fd(sock);
    close(sock);
    struct stat st;
    if (fstat(buf, &st) < 0) die("fstat");
    size = (size_t)lseek(buf, 0, SEEK_END);
  } else {
    fprintf(stderr, "dmabuf-holder: unknown command %s\n", argv[1]);
    return 2;
  }
  struct stat st;
  if (fstat(buf, &st) < 0) die("fstat");
  int mapped = 0;
  if (has(argc, argv, "--map")) {
    volatile unsigned char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, buf, 0);
    if (p == MAP_FAILED) die("mmap");
    p[0] = 0x5a;  // fault a page in: the mapping is real, not just reserved
    mapped = 1;
  }
  int fd = buf;
  if (has(argc, argv, "--close-fd")) {
    close(buf);
    fd = -1;
  }
  int device = card;
  if (card >= 0 && has(argc, argv, "--close-device")) {
    struct drm_gem_close gem = {.handle = handle};
    if (ioctl(card, DRM_IOCTL_GEM_CLOSE, &gem) < 0) die("DRM_IOCTL_GEM_CLOSE");
    close(card);
    device = -1;
  }
  const char *serve = value(argc, argv, "--serve");
  int listener = -1;
  if (serve && fd >= 0) {
    listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = socket_address(serve);
    unlink(serve);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(listener, 16) < 0) die("listen");
  }
  printf("READY pid=%d ino=%lu size=%zu fd=%d mapped=%d device=%d\n", getpid(),
         (unsigned long)st.st_ino, size, fd, mapped, device);
  fflush(stdout);
  for (;;) {
    if (listener < 0) {
      pause();
      continue;
    }
    int client = accept(listener, NULL, NULL);
    if (client < 0) continue;
    send_fd(client, fd);
    close(client);
  }
}
