// bench/bench_helper.c — multi-threaded metadata and small-file workloads for
// bench/run.sh. Compiled at run time: cc -O2 -pthread bench_helper.c.
//
//   bench_helper create DIR N THREADS     create N empty files f0000000..
//   bench_helper stat   DIR N THREADS     stat them
//   bench_helper rename DIR N THREADS     rename f* -> r* (same directory)
//   bench_helper unlink DIR N THREADS     unlink r*
//   bench_helper fsync  DIR N THREADS     create + write 4 KiB + fsync + close
//
// File i is handled by thread i % THREADS. Prints the elapsed wall-clock
// seconds of the operation phase only (threads are started behind a barrier),
// and exits non-zero on the first failed syscall.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char* g_op;
static const char* g_dir;
static long g_n;
static int g_threads;
static pthread_barrier_t g_barrier;
static volatile int g_failed;

static void name(char* buf, size_t len, char prefix, long i) {
  snprintf(buf, len, "%s/%c%07ld", g_dir, prefix, i);
}

static void fail(const char* what, const char* path) {
  fprintf(stderr, "bench_helper %s %s: %s\n", what, path, strerror(errno));
  g_failed = 1;
}

static void* worker(void* arg) {
  long t = (long)arg;
  char a[4096], b[4096];
  static const char block[4096] = {'x'};
  pthread_barrier_wait(&g_barrier);
  for (long i = t; i < g_n && !g_failed; i += g_threads) {
    if (strcmp(g_op, "create") == 0) {
      name(a, sizeof a, 'f', i);
      int fd = open(a, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0) { fail("open", a); break; }
      close(fd);
    } else if (strcmp(g_op, "stat") == 0) {
      struct stat st;
      name(a, sizeof a, 'f', i);
      if (stat(a, &st) != 0) { fail("stat", a); break; }
    } else if (strcmp(g_op, "rename") == 0) {
      name(a, sizeof a, 'f', i);
      name(b, sizeof b, 'r', i);
      if (rename(a, b) != 0) { fail("rename", a); break; }
    } else if (strcmp(g_op, "unlink") == 0) {
      name(a, sizeof a, 'r', i);
      if (unlink(a) != 0) { fail("unlink", a); break; }
    } else if (strcmp(g_op, "fsync") == 0) {
      name(a, sizeof a, 's', i);
      int fd = open(a, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0) { fail("open", a); break; }
      if (write(fd, block, sizeof block) != (ssize_t)sizeof block) { fail("write", a); close(fd); break; }
      if (fsync(fd) != 0) { fail("fsync", a); close(fd); break; }
      if (close(fd) != 0) { fail("close", a); break; }
    } else {
      fprintf(stderr, "bench_helper: unknown op %s\n", g_op);
      g_failed = 1;
    }
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s create|stat|rename|unlink|fsync DIR N THREADS\n", argv[0]);
    return 2;
  }
  g_op = argv[1];
  g_dir = argv[2];
  g_n = atol(argv[3]);
  g_threads = atoi(argv[4]);
  if (g_n <= 0 || g_threads <= 0) return 2;
  pthread_t* tids = calloc((size_t)g_threads, sizeof *tids);
  pthread_barrier_init(&g_barrier, NULL, (unsigned)g_threads + 1);
  for (long t = 0; t < g_threads; ++t) pthread_create(&tids[t], NULL, worker, (void*)t);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pthread_barrier_wait(&g_barrier);
  for (int t = 0; t < g_threads; ++t) pthread_join(tids[t], NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (g_failed) return 1;
  printf("%.6f\n", (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
  return 0;
}
