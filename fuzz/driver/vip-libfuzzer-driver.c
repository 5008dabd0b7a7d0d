// vip-libfuzzer-driver: runs libFuzzer against a SharpFuzz-instrumented .NET program.
//
// libFuzzer mutates inputs in this (native) process; the .NET program runs as a child and executes each input.
// The two talk the way SharpFuzz's Fuzzer.LibFuzzer.Run expects (SharpFuzz 2.3.0):
//   - one System V shared memory segment, id in the child's environment as __LIBFUZZER_SHM_ID (and the two pipe
//     descriptors as __LIBFUZZER_CONTROL_PIPE_ID / __LIBFUZZER_STATUS_PIPE_ID):
//     [0, 64 KiB) the coverage map the instrumented code writes, then up to 1 MiB of input bytes;
//   - the child reads a 32-bit input length from fd 198 for each run, and writes a 32-bit status to fd 199
//     (once at start-up as a hello, then 0 = ok, non-zero = the target threw).
// After each run the coverage map is copied into libFuzzer's extra counters, which steer its mutations.
//
// Build: clang -O2 -fsanitize=fuzzer vip-libfuzzer-driver.c -o vip-libfuzzer-driver   (fuzz/run.sh does it)
// Run:   vip-libfuzzer-driver [libFuzzer flags] corpus-dir --exec=/usr/bin/dotnet --arg=Vip.Fuzz.dll --arg=frame
// Flags starting with "--" are left alone by libFuzzer, so --exec/--arg pass through to us.

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define COVERAGE_BYTES (1 << 16)
#define INPUT_BYTES (1 << 20)
#define CONTROL_FD 198
#define STATUS_FD 199
#define MAX_ARGS 32

__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t coverage[COVERAGE_BYTES];

static uint8_t *shared;
static int shm_id = -1;
static int control_fd = -1;
static int status_fd = -1;
static pid_t child = -1;

static void fail(const char *what)
{
    fprintf(stderr, "vip-libfuzzer-driver: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void cleanup(void)
{
    if (shm_id >= 0)
    {
        shmctl(shm_id, IPC_RMID, NULL);
    }

    if (child > 0)
    {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
}

static int read_all(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0)
    {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
        {
            continue;
        }

        if (r <= 0)
        {
            return -1;
        }

        p += r;
        n -= (size_t)r;
    }

    return 0;
}

static int write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n > 0)
    {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR)
        {
            continue;
        }

        if (r <= 0)
        {
            return -1;
        }

        p += r;
        n -= (size_t)r;
    }

    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *exec_path = NULL;
    char *child_argv[MAX_ARGS + 2];
    int child_argc = 1;

    for (int i = 1; i < *argc; i++)
    {
        const char *a = (*argv)[i];
        if (strncmp(a, "--exec=", 7) == 0)
        {
            exec_path = a + 7;
        }
        else if (strncmp(a, "--arg=", 6) == 0 && child_argc <= MAX_ARGS)
        {
            child_argv[child_argc++] = (char *)(a + 6);
        }
    }

    if (exec_path == NULL)
    {
        fprintf(stderr, "vip-libfuzzer-driver: give the .NET program with --exec=PATH [--arg=ARG]...\n");
        exit(2);
    }

    child_argv[0] = (char *)exec_path;
    child_argv[child_argc] = NULL;

    int control[2], status[2];
    if (pipe(control) != 0 || pipe(status) != 0)
    {
        fail("pipe");
    }

    shm_id = shmget(IPC_PRIVATE, COVERAGE_BYTES + INPUT_BYTES, IPC_CREAT | IPC_EXCL | 0600);
    if (shm_id < 0)
    {
        fail("shmget");
    }

    atexit(cleanup);
    shared = shmat(shm_id, NULL, 0);
    if (shared == (void *)-1)
    {
        fail("shmat");
    }

    child = fork();
    if (child < 0)
    {
        fail("fork");
    }

    if (child == 0)
    {
        if (dup2(control[0], CONTROL_FD) < 0 || dup2(status[1], STATUS_FD) < 0)
        {
            fail("dup2");
        }

        close(control[0]);
        close(control[1]);
        close(status[0]);
        close(status[1]);
        char id[16];
        snprintf(id, sizeof id, "%d", shm_id);
        setenv("__LIBFUZZER_SHM_ID", id, 1);
        setenv("__LIBFUZZER_CONTROL_PIPE_ID", "198", 1);
        setenv("__LIBFUZZER_STATUS_PIPE_ID", "199", 1);
        execvp(exec_path, child_argv);
        fail("exec");
    }

    close(control[0]);
    close(status[1]);
    control_fd = control[1];
    status_fd = status[0];

    int32_t hello;
    if (read_all(status_fd, &hello, sizeof hello) != 0)
    {
        fprintf(stderr, "vip-libfuzzer-driver: the .NET program exited before it was ready\n");
        exit(2);
    }

    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > INPUT_BYTES)
    {
        return 0; // run.sh caps -max_len far below this; never truncate silently
    }

    memset(shared, 0, COVERAGE_BYTES);
    memcpy(shared + COVERAGE_BYTES, data, size);
    int32_t length = (int32_t)size;
    if (write_all(control_fd, &length, sizeof length) != 0)
    {
        fprintf(stderr, "vip-libfuzzer-driver: the .NET program is gone\n");
        abort();
    }

    int32_t result;
    if (read_all(status_fd, &result, sizeof result) != 0)
    {
        // The child died without answering (stack overflow, fail-fast, out of memory): that is a crash too.
        fprintf(stderr, "vip-libfuzzer-driver: the .NET program died on this input\n");
        abort();
    }

    memcpy(coverage, shared, COVERAGE_BYTES);
    if (result != 0)
    {
        // The target threw something other than its documented exception (printed by the child).
        abort();
    }

    return 0;
}
