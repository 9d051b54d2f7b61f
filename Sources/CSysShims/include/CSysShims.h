#ifndef CSYSSHIMS_H
#define CSYSSHIMS_H

// What Swift's Glibc module does not export: epoll, accept4, eventfd, and a
// posix_spawn wrapper that gives the child an empty signal mask and default signal actions: otherwise it
// inherits the spawning thread's mask (libdispatch's signal handling blocks signals on its threads) and the
// daemon's ignored signals, and SIGTERM would not stop it.

#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

#define SHIM_EPOLLIN 0x001u
#define SHIM_EPOLLOUT 0x004u
#define SHIM_EPOLLERR 0x008u
#define SHIM_EPOLLHUP 0x010u
#define SHIM_EPOLLRDHUP 0x2000u
#define SHIM_EPOLLET (1u << 31)
#define SHIM_EPOLLONESHOT (1u << 30)

/// An epoll event, unpacked (the kernel's struct is packed on x86_64).
typedef struct shim_epoll_event {
    uint32_t events;
    uint64_t data;
} shim_epoll_event;

int shim_epoll_create(void);
int shim_epoll_add(int epfd, int fd, uint32_t events, uint64_t data);
int shim_epoll_mod(int epfd, int fd, uint32_t events, uint64_t data);
int shim_epoll_del(int epfd, int fd);
/// Waits like epoll_wait and copies up to `max` events into `out`.
int shim_epoll_wait(int epfd, shim_epoll_event *out, int max, int timeout_ms);

/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC.
int shim_accept_nonblocking(int fd, struct sockaddr *addr, socklen_t *len);

/// A non-blocking, close-on-exec eventfd.
int shim_eventfd(void);
int shim_eventfd_signal(int fd);
int shim_eventfd_drain(int fd);

/// Spawns `/bin/sh -c command` (or argv when command is NULL) with an empty signal
/// mask and default dispositions, optionally in a new session, with stdout and
/// stderr sent to `out_fd` (or inherited when -1). Returns the pid or -errno.
pid_t shim_spawn(const char *path, char *const argv[], char *const envp[], int new_session, int out_fd);

/// Names the calling thread (pthread_setname_np; at most 15 bytes are kept).
int shim_set_thread_name(const char *name);

/// Spawns an agent: like shim_spawn with a new session (setsid), stdout to out_fd and stderr
/// to err_fd, and every descriptor from 3 up closed in the child, so an agent that outlives
/// the daemon holds none of its sockets or files. Returns the pid or -errno.
pid_t shim_spawn_detached(const char *path, char *const argv[], char *const envp[], int out_fd, int err_fd);

/// pidfd_open(2): a close-on-exec descriptor that polls readable once `pid` has exited
/// (child or not). Returns the descriptor or -errno (-ENOSYS before Linux 5.3).
int shim_pidfd_open(pid_t pid);

/// fcntl(F_SETPIPE_SZ): resizes a pipe's buffer. Returns the new size or -errno.
int shim_set_pipe_size(int fd, int size);

#endif
