/* A static probe the end-to-end tests copy into the busybox rootfs. Each "syscall"
 * argument tries one operation the sandbox must refuse and prints "NAME ERRNO_NAME";
 * "alloc N" touches N MiB of memory; "forkbomb N" forks N sleeping children; "http IP PORT HOST PATH" fetches a URL. Built with
 * `gcc -static` by the test harness, so it runs in any rootfs. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static const char *ename(int e) {
    switch (e) {
    case 0: return "OK";
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    case ENOTTY: return "ENOTTY";
    case EBADF: return "EBADF";
    case EFAULT: return "EFAULT";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    default: return "OTHER";
    }
}

static long try(const char *name) {
    errno = 0;
    long r = -1;
    if (!strcmp(name, "keyctl")) r = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0);
    else if (!strcmp(name, "add_key")) r = syscall(SYS_add_key, "user", "ags", "x", 1, -3);
    else if (!strcmp(name, "request_key")) r = syscall(SYS_request_key, "user", "ags", NULL, 0);
    else if (!strcmp(name, "userfaultfd")) r = syscall(SYS_userfaultfd, 0);
    else if (!strcmp(name, "io_uring_setup")) { char p[120] = {0}; r = syscall(SYS_io_uring_setup, 1, p); }
    else if (!strcmp(name, "bpf")) { union bpf_attr a; memset(&a, 0, sizeof a); r = syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a); }
    else if (!strcmp(name, "perf_event_open")) { struct perf_event_attr a; memset(&a, 0, sizeof a); a.size = sizeof a; r = syscall(SYS_perf_event_open, &a, 0, -1, -1, 0); }
    else if (!strcmp(name, "kexec_load")) r = syscall(SYS_kexec_load, 0, 0, NULL, 0);
    else if (!strcmp(name, "init_module")) r = syscall(SYS_init_module, NULL, 0, "");
    else if (!strcmp(name, "finit_module")) r = syscall(SYS_finit_module, 0, "", 0);
    else if (!strcmp(name, "delete_module")) r = syscall(SYS_delete_module, "ags", 0);
    else if (!strcmp(name, "mount")) r = mount("none", "/tmp", "tmpfs", 0, NULL);
    else if (!strcmp(name, "umount2")) r = umount2("/tmp", MNT_DETACH);
    else if (!strcmp(name, "pivot_root")) r = syscall(SYS_pivot_root, "/tmp", "/tmp");
    else if (!strcmp(name, "setns")) r = setns(0, 0);
    else if (!strcmp(name, "unshare")) r = unshare(CLONE_NEWUSER);
    else if (!strcmp(name, "clone_newuser")) {
        r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (r == 0) _exit(0);
        if (r > 0) { waitpid(r, NULL, 0); r = 0; }
    }
    else if (!strcmp(name, "clone3")) { char a[88] = {0}; r = syscall(SYS_clone3, a, sizeof a); if (r == 0) _exit(0); }
    else if (!strcmp(name, "ptrace")) r = syscall(SYS_ptrace, 0 /* TRACEME */, 0, 0, 0);
    else if (!strcmp(name, "process_vm_readv")) { char b[4]; struct iovec l = {b, 4}, rm = {b, 4}; r = process_vm_readv(getpid(), &l, 1, &rm, 1, 0); }
    else if (!strcmp(name, "process_vm_writev")) { char b[4]; struct iovec l = {b, 4}, rm = {b, 4}; r = process_vm_writev(getpid(), &l, 1, &rm, 1, 0); }
    else if (!strcmp(name, "tiocsti")) { char c = 'x'; r = ioctl(0, TIOCSTI, &c); }
    /* The kernel reads the request as 32 bits: a filter comparing 64 bits misses this. */
    else if (!strcmp(name, "tiocsti_high")) { char c = 'x'; r = syscall(SYS_ioctl, 0, 0x100000000UL | TIOCSTI, &c); }
    else if (!strcmp(name, "tiocgwinsz")) { struct winsize w; r = ioctl(0, TIOCGWINSZ, &w); }
    else { fprintf(stderr, "unknown probe %s\n", name); exit(2); }
    return r < 0 ? errno : 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "alloc")) {
        size_t mib = strtoul(argv[2], NULL, 10);
        for (size_t i = 0; i < mib; i++) {
            char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) { printf("mmap failed at %zu\n", i); return 3; }
            memset(p, 1, 1 << 20);
        }
        printf("allocated %zu MiB\n", mib);
        return 0;
    }
    if (argc >= 6 && !strcmp(argv[1], "http")) {
        /* http IP PORT HOST PATH: a plain HTTP/1.1 GET to a numeric address (no name
         * lookup: static glibc cannot load NSS modules in a foreign rootfs), 5 s limit. */
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
        if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) { printf("bad address\n"); return 2; }
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fd, (struct sockaddr *)&a, sizeof a);
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 5000) <= 0) { printf("connect timeout\n"); return 3; }
        int err = 0; socklen_t l = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) { printf("connect failed: %s\n", strerror(err)); return 3; }
        char req[512];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", argv[5], argv[4]);
        if (write(fd, req, n) != n) { printf("write failed\n"); return 3; }
        char buf[4096];
        for (;;) {
            p.events = POLLIN;
            if (poll(&p, 1, 5000) <= 0) { printf("\nread timeout\n"); return 3; }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) break;
            fwrite(buf, 1, r, stdout);
        }
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "forkbomb")) {
        /* Fork up to N children that sleep; report how many forks succeeded and failed. */
        long n = strtol(argv[2], NULL, 10), ok = 0, failed = 0;
        for (long i = 0; i < n; i++) {
            pid_t p = fork();
            if (p == 0) { sleep(5); _exit(0); }
            if (p > 0) ok++; else failed++;
        }
        printf("forked %ld failed %ld\n", ok, failed);
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "syscalls")) {
        for (int i = 2; i < argc; i++) printf("%s %s\n", argv[i], ename((int)try(argv[i])));
        return 0;
    }
    fprintf(stderr, "usage: probe syscalls NAME... | alloc MIB\n");
    return 2;
}
