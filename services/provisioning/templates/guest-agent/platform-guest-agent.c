/*
 * platform-guest-agent: runs commands inside a Platform micro-VM for the host's agent, over the virtio-serial port
 * named "platform.agent" -- a channel of the VM's QEMU that only the host reaches, never the tenant network.
 *
 * The protocol (docs/drivers/microvm.md, "The guest agent") is frames: a 9-byte header -- payload length (u32), type
 * (u8), process id (u32), big-endian -- then the payload. The host says SYNC when it connects (a new session: whatever
 * the agent still runs for an earlier one is killed) and the agent answers HELLO with the SYNC's nonce. START runs a command in a session of
 * its own, on pipes or on a terminal of its own; INPUT feeds its stdin (empty: the end of it); SIGNAL signals its
 * process group; RESIZE resizes its terminal. The agent answers STARTED
 * or FAILED, then OUTPUT and ERRORS as the command writes and EXITED (128 + signal when a signal ended it) once it
 * has ended and its output is read.
 *
 * In a sandbox or a container (--socket NAME -- COMMAND...) it is the machine's first process, confined as the machine
 * is: it runs COMMAND as the machine's main process, passes it the signals that would end a first process (a
 * container's stop), reaps orphans, and ends as the command does; hosts connect to the abstract unix socket NAME of
 * the machine's network namespace, where only the host (it enters the namespace) and the machine's own processes
 * reach it; a new connection is a new session. Commands it forks are in the machine's namespaces and cgroups and
 * under its seccomp filter and capability bounds by birth: exec costs one fork, not a chain of setns and execs or an
 * engine's runtime.
 *
 * A busybox initramfs has no libc to link against: this is built static, and small, from Debian's gcc and libc.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/random.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
    SYNC = 1, START = 2, INPUT = 3, SIGNAL = 4, RESIZE = 5,
    HELLO = 64, STARTED = 65, FAILED = 66, OUTPUT = 67, ERRORS = 68, EXITED = 69,
};

#define PORT_NAME "platform.agent"
#define HEADER 9
/* A START carries at most 256 KiB of arguments and environment; nothing the host sends is larger. */
#define MAX_FRAME (1024 * 1024)
/* One frame per write: the port takes up to 32 KiB in one piece; a sandbox's socket takes frames up to the host's 64 KiB. */
#define CHUNK (16 * 1024)
#define SOCKET_CHUNK (60 * 1024)
#define MAX_PROCESSES 64
/* Past this much unwritten input the agent stops reading the port until a command takes some. */
#define MAX_PENDING_INPUT (4 * 1024 * 1024)

static const char greeting[] = "PLATFORM-GUEST-AGENT/1";

struct process {
    uint32_t id;
    pid_t pid;
    int in, out, err;
    int terminal;
    char *pending;
    size_t pending_length;
    int close_input;
};

static int port = -1;
static size_t chunk = CHUNK;
/* In a sandbox: where hosts connect, and the sandbox's main process. */
static int listener = -1;
static pid_t main_pid;
static struct process processes[MAX_PROCESSES];
static unsigned char *frames;
static size_t frames_length;

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Blocks while no host is connected: the port takes writes only then. */
static void send_frame(int type, uint32_t id, const void *data, size_t length)
{
    /* Not on the stack: a probed 60 KiB frame per call costs page touches that TCG makes dear. One thread uses them. */
    static unsigned char buffer[HEADER + SOCKET_CHUNK];
    size_t done = 0;
    put32(buffer, (uint32_t)length);
    buffer[4] = (unsigned char)type;
    put32(buffer + 5, id);
    memcpy(buffer + HEADER, data, length);
    while (done < HEADER + length) {
        ssize_t written = write(port, buffer + done, HEADER + length - done);
        if (written < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return;
        }
        done += (size_t)written;
    }
}

static void send_number(int type, uint32_t id, long number)
{
    char text[24];
    int length = snprintf(text, sizeof text, "%ld", number);
    send_frame(type, id, text, (size_t)length);
}

static struct process *find(uint32_t id)
{
    for (int i = 0; i < MAX_PROCESSES; i++)
        if (processes[i].pid > 0 && processes[i].id == id)
            return &processes[i];
    return NULL;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void forget(struct process *p)
{
    close_fd(&p->in);
    close_fd(&p->out);
    close_fd(&p->err);
    free(p->pending);
    memset(p, 0, sizeof *p);
    p->in = p->out = p->err = -1;
}

/* A new host, or none: nothing started for the last one is anyone's any more. */
static void kill_all(void)
{
    for (int i = 0; i < MAX_PROCESSES; i++)
        if (processes[i].pid > 0) {
            kill(-processes[i].pid, SIGKILL);
            kill(processes[i].pid, SIGKILL);
            forget(&processes[i]);
        }
}

/* Sends what a stream has now; returns 0 at its end (or on an error), 1 if it may have more. */
static int relay(struct process *p, int *fd, int type)
{
    static char buffer[SOCKET_CHUNK];
    ssize_t length = read(*fd, buffer, chunk);
    if (length > 0) {
        send_frame(type, p->id, buffer, (size_t)length);
        return 1;
    }
    if (length < 0 && (errno == EAGAIN || errno == EINTR))
        return 1;
    close_fd(fd);
    return 0;
}

static void flush_input(struct process *p)
{
    while (p->in >= 0 && p->pending_length > 0) {
        ssize_t written = write(p->in, p->pending, p->pending_length);
        if (written < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN) {
                /* The command closed its stdin: what is left of the input goes nowhere. */
                p->pending_length = 0;
                close_fd(&p->in);
            }
            return;
        }
        memmove(p->pending, p->pending + written, p->pending_length - (size_t)written);
        p->pending_length -= (size_t)written;
    }
    if (p->close_input && p->pending_length == 0)
        close_fd(&p->in);
}

static size_t pending_input(void)
{
    size_t total = 0;
    for (int i = 0; i < MAX_PROCESSES; i++)
        if (processes[i].pid > 0)
            total += processes[i].pending_length;
    return total;
}

static void fail(uint32_t id, const char *message)
{
    send_frame(FAILED, id, message, strlen(message));
}

static void child_fails(const char *what, const char *target, int code)
{
    dprintf(2, "platform-guest-agent: %s %s: %s\n", what, target, strerror(errno));
    _exit(code);
}

/* In a child about to become a command: no blocked signals, and SIGPIPE's default (this process ignores it). */
static void as_a_command(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
}

/* "COLUMNSxROWS" into a window size; 0 when it is none. */
static int window_size(const char *text, struct winsize *size)
{
    unsigned columns, rows;
    if (sscanf(text, "%ux%u", &columns, &rows) != 2 || columns < 1 || rows < 1 || columns > 1000 || rows > 1000)
        return 0;
    *size = (struct winsize){ .ws_col = (unsigned short)columns, .ws_row = (unsigned short)rows };
    return 1;
}

/*
 * START's payload: uid, gid, working directory, the terminal's size ("COLUMNSxROWS", empty for pipes), the number of
 * arguments, the arguments, then the environment (name=value), each ending in a NUL.
 */
static void start(uint32_t id, char *payload, size_t length)
{
    static char *fields[32768];
    size_t count = 0;
    char *at = payload, *end = payload + length;
    if (length == 0 || payload[length - 1] != '\0') {
        fail(id, "malformed START");
        return;
    }
    while (at < end && count < sizeof fields / sizeof fields[0]) {
        fields[count++] = at;
        at += strlen(at) + 1;
    }
    long argc = count >= 5 ? strtol(fields[4], NULL, 10) : 0;
    struct winsize window;
    int terminal = count >= 5 && fields[3][0] != '\0';
    if (count < 6 || argc < 1 || (size_t)argc > count - 5 || fields[2][0] != '/' || (terminal && !window_size(fields[3], &window))) {
        fail(id, "malformed START");
        return;
    }
    if (find(id) != NULL) {
        fail(id, "a process with this id runs already");
        return;
    }
    struct process *slot = NULL;
    for (int i = 0; i < MAX_PROCESSES && slot == NULL; i++)
        if (processes[i].pid == 0)
            slot = &processes[i];
    if (slot == NULL) {
        fail(id, "the guest agent runs as many processes as it may (64)");
        return;
    }
    uid_t uid = (uid_t)strtoul(fields[0], NULL, 10);
    gid_t gid = (gid_t)strtoul(fields[1], NULL, 10);
    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    char **envp = calloc(count - 5 - (size_t)argc + 1, sizeof *envp);
    int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
    int primary = -1;
    char secondary[64] = { 0 };
    int opened = argv != NULL && envp != NULL;
    if (opened && terminal) {
        primary = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        opened = primary >= 0 && grantpt(primary) == 0 && unlockpt(primary) == 0
            && ptsname_r(primary, secondary, sizeof secondary) == 0 && ioctl(primary, TIOCSWINSZ, &window) == 0
            && (in[1] = fcntl(primary, F_DUPFD_CLOEXEC, 3)) >= 0;
        out[0] = primary;
    } else if (opened) {
        opened = pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0;
    }
    if (!opened) {
        fail(id, strerror(errno));
        for (int i = 0; i < 2; i++) {
            close_fd(&in[i]);
            close_fd(&out[i]);
            close_fd(&err[i]);
        }
        free(argv);
        free(envp);
        return;
    }
    for (long i = 0; i < argc; i++)
        argv[i] = fields[5 + i];
    for (size_t i = 5 + (size_t)argc, j = 0; i < count; i++, j++)
        envp[j] = fields[i];

    pid_t pid = fork();
    if (pid == 0) {
        as_a_command();
        setsid();
        if (terminal) {
            /* Opening it as a session leader with no terminal makes it the controlling one; TIOCSCTTY says so outright. */
            int tty = open(secondary, O_RDWR);
            if (tty < 0 || ioctl(tty, TIOCSCTTY, 0) < 0)
                _exit(125);
            dup2(tty, 0);
            dup2(tty, 1);
            dup2(tty, 2);
            if (tty > 2)
                close(tty);
        } else {
            dup2(in[0], 0);
            dup2(out[1], 1);
            dup2(err[1], 2);
        }
        if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
            child_fails("cannot become", fields[0], 126);
        if (chdir(fields[2]) < 0)
            child_fails("cannot change to", fields[2], 1);
        environ = envp;
        execvp(argv[0], argv);
        child_fails("cannot run", argv[0], errno == ENOENT ? 127 : 126);
    }
    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&err[1]);
    free(argv);
    free(envp);
    if (pid < 0) {
        fail(id, strerror(errno));
        close_fd(&in[1]);
        close_fd(&out[0]);
        close_fd(&err[0]);
        return;
    }
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    if (err[0] >= 0)
        fcntl(err[0], F_SETFL, O_NONBLOCK);
    *slot = (struct process){ .id = id, .pid = pid, .in = in[1], .out = out[0], .err = err[0], .terminal = terminal };
    send_number(STARTED, id, pid);
}

static void input(uint32_t id, const unsigned char *data, size_t length)
{
    struct process *p = find(id);
    if (p == NULL || p->close_input)
        return;
    if (length == 0) {
        /* A terminal's input has no end: the command reads what is typed until it ends. */
        if (!p->terminal)
            p->close_input = 1;
    } else if (p->in >= 0) {
        char *grown = realloc(p->pending, p->pending_length + length);
        if (grown == NULL)
            return;
        p->pending = grown;
        memcpy(p->pending + p->pending_length, data, length);
        p->pending_length += length;
    }
    flush_input(p);
}

static void handle(int type, uint32_t id, unsigned char *payload, size_t length)
{
    switch (type) {
    case SYNC: {
        /* The answer echoes the host's nonce: only it tells the host where this session's frames start. */
        unsigned char hello[sizeof greeting - 1 + 64];
        size_t nonce = length < 64 ? length : 64;
        kill_all();
        memcpy(hello, greeting, sizeof greeting - 1);
        memcpy(hello + sizeof greeting - 1, payload, nonce);
        send_frame(HELLO, 0, hello, sizeof greeting - 1 + nonce);
        break;
    }
    case START:
        start(id, (char *)payload, length);
        break;
    case INPUT:
        input(id, payload, length);
        break;
    case SIGNAL: {
        struct process *p = find(id);
        char number[16] = { 0 };
        memcpy(number, payload, length < sizeof number - 1 ? length : sizeof number - 1);
        int signal_number = atoi(number);
        if (p != NULL && signal_number > 0 && signal_number < 65) {
            kill(-p->pid, signal_number);
            kill(p->pid, signal_number);
        }
        break;
    }
    case RESIZE: {
        struct process *p = find(id);
        char text[32] = { 0 };
        struct winsize window;
        memcpy(text, payload, length < sizeof text - 1 ? length : sizeof text - 1);
        if (p != NULL && p->terminal && p->in >= 0 && window_size(text, &window))
            ioctl(p->in, TIOCSWINSZ, &window);
        break;
    }
    default:
        break;
    }
}

/* Reads what the host sent and acts on each whole frame; returns 0 once the host is gone. */
static int read_port(void)
{
    ssize_t length = read(port, frames + frames_length, HEADER + MAX_FRAME - frames_length);
    if (length < 0)
        return errno == EINTR || errno == EAGAIN;
    if (length == 0)
        return 0;
    frames_length += (size_t)length;
    size_t at = 0;
    while (frames_length - at >= HEADER) {
        uint32_t payload = get32(frames + at);
        if (payload > MAX_FRAME) {
            /* Not this protocol: drop it all and start over. */
            frames_length = at = 0;
            break;
        }
        if (frames_length - at < HEADER + payload)
            break;
        handle(frames[at + 4], get32(frames + at + 5), frames + at + HEADER, payload);
        at += HEADER + payload;
    }
    memmove(frames, frames + at, frames_length - at);
    frames_length -= at;
    return 1;
}

/* The sandbox's main process has ended: so does the sandbox, the way it did (a signal that ended it ends this too). */
static void end_as(int status)
{
    kill_all();
    if (WIFEXITED(status))
        exit(WEXITSTATUS(status));
    int signal_number = WTERMSIG(status);
    setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 });
    signal(signal_number, SIG_DFL);
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_UNBLOCK, &all, NULL);
    kill(getpid(), signal_number);
    _exit(128 + signal_number);
}

static void reap(int signals)
{
    struct signalfd_siginfo info;
    while (read(signals, &info, sizeof info) == sizeof info)
        /* Signals meant for the machine (an engine's stop, a tenant's kill of its first process) go to its command. */
        if (info.ssi_signo != SIGCHLD && main_pid > 0)
            kill(main_pid, (int)info.ssi_signo);
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == main_pid)
            end_as(status);
        struct process *p = NULL;
        for (int i = 0; i < MAX_PROCESSES && p == NULL; i++)
            if (processes[i].pid == pid)
                p = &processes[i];
        if (p == NULL)
            continue;
        /* What it wrote before it ended goes first; whatever it left running may keep the pipes open, so no waiting. */
        for (int rounds = 0; rounds < 256 && p->out >= 0 && relay(p, &p->out, OUTPUT); rounds++)
            if (poll(&(struct pollfd){ .fd = p->out, .events = POLLIN }, 1, 0) <= 0)
                break;
        for (int rounds = 0; rounds < 256 && p->err >= 0 && relay(p, &p->err, ERRORS); rounds++)
            if (poll(&(struct pollfd){ .fd = p->err, .events = POLLIN }, 1, 0) <= 0)
                break;
        long code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        send_number(EXITED, p->id, code);
        forget(p);
    }
}

static int open_port(void)
{
    for (int attempt = 0; attempt < 2000; attempt++) {
        DIR *ports = opendir("/sys/class/virtio-ports");
        struct dirent *entry;
        while (ports != NULL && (entry = readdir(ports)) != NULL) {
            char path[300], name[64] = { 0 };
            snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", entry->d_name);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            ssize_t length = read(fd, name, sizeof name - 1);
            close(fd);
            if (length > 0 && strncmp(name, PORT_NAME "\n", sizeof PORT_NAME) == 0) {
                snprintf(path, sizeof path, "/dev/%s", entry->d_name);
                closedir(ports);
                return open(path, O_RDWR | O_CLOEXEC);
            }
        }
        if (ports != NULL)
            closedir(ports);
        usleep(5000);
    }
    errno = ENOENT;
    return -1;
}

/* The abstract unix socket NAME of this network namespace; -1 (and a word on stderr) when it cannot be had. */
static int listen_on(const char *name)
{
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    size_t length = strlen(name);
    if (length == 0 || length > sizeof address.sun_path - 2) {
        dprintf(2, "PLATFORM-ERROR guest agent: a socket name is 1 to %zu bytes\n", sizeof address.sun_path - 2);
        return -1;
    }
    memcpy(address.sun_path + 1, name, length);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + length)) < 0 || listen(fd, 8) < 0) {
        dprintf(2, "PLATFORM-ERROR guest agent: cannot listen on @%s: %s\n", name, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/*
 * The machine's main process: COMMAND with this process's streams and environment, and default signals. Returns once
 * it runs COMMAND: a COMMAND that cannot be run ends this process as it ends, before any host is answered, so that an
 * answer means the command runs.
 */
static pid_t run_main(char **command)
{
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        as_a_command();
        close(ready[0]);
        execvp(command[0], command);
        int failure = errno;
        dprintf(2, "%s: %s\n", command[0], strerror(failure));
        if (write(ready[1], &failure, sizeof failure) < 0)
            _exit(126);
        _exit(failure == ENOENT ? 127 : 126);
    }
    close(ready[1]);
    if (pid > 0) {
        int failure;
        ssize_t length;
        while ((length = read(ready[0], &failure, sizeof failure)) < 0 && errno == EINTR)
            ;
        if (length == sizeof failure) {
            int status;
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            end_as(status);
        }
    }
    close(ready[0]);
    return pid;
}

/* A host connected to the sandbox's socket: the last one's session, if any, ends. */
static void accept_host(void)
{
    int connection = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (connection < 0)
        return;
    if (port >= 0) {
        kill_all();
        close(port);
    }
    port = connection;
    frames_length = 0;
    send_frame(HELLO, 0, greeting, sizeof greeting - 1);
}

/*
 * --reseed HEX: a clone of a micro-VM starts with its parent's random state. Writing to /dev/urandom only mixes bytes
 * into the input pool, which the generator takes up at its next reseed (up to a minute later): until then two clones
 * draw the same numbers. This credits the host's bytes as entropy and reseeds the generator at once (root only).
 */
static int reseed(const char *hex)
{
    size_t length = strlen(hex) / 2;
    if (length == 0 || length > 256)
        return 2;
    struct rand_pool_info *info = malloc(sizeof *info + length);
    unsigned char *bytes = (unsigned char *)info->buf;
    for (size_t i = 0; i < length; i++)
        if (sscanf(hex + 2 * i, "%2hhx", &bytes[i]) != 1)
            return 2;
    info->entropy_count = (int)(length * 8);
    info->buf_size = (int)length;
    int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ioctl(fd, RNDADDENTROPY, info) < 0 || ioctl(fd, RNDRESEEDCRNG) < 0) {
        dprintf(2, "reseed: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

/*
 * --keep-capabilities LIST -- COMMAND...: what setpriv --bounding-set, --inh-caps=-all and --ambient-caps=-all do, for a
 * sandbox whose root (an image's) has no setpriv: the bounding set narrowed to LIST (capability numbers, comma-separated),
 * the inheritable and ambient sets emptied, then COMMAND in its place.
 */
static int keep_capabilities(const char *list, char **command)
{
    unsigned long long keep = 0;
    for (const char *p = list; *p != '\0';) {
        char *end;
        long cap = strtol(p, &end, 10);
        if (end == p || cap < 0 || cap > 63 || (*end != ',' && *end != '\0'))
            return 2;
        keep |= 1ULL << cap;
        p = *end == ',' ? end + 1 : end;
    }
    for (int cap = 0; cap <= 63; cap++) {
        /* EINVAL: past the kernel's last capability. */
        if (!(keep & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) {
            dprintf(2, "keep-capabilities: cannot drop %d: %s\n", cap, strerror(errno));
            return 125;
        }
    }
    struct { uint32_t version; int pid; } header = { 0x20080522, 0 };
    struct { uint32_t effective, permitted, inheritable; } data[2];
    if (syscall(SYS_capget, &header, data) < 0) {
        dprintf(2, "keep-capabilities: capget: %s\n", strerror(errno));
        return 125;
    }
    data[0].inheritable = data[1].inheritable = 0;
    if (syscall(SYS_capset, &header, data) < 0 || prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) {
        dprintf(2, "keep-capabilities: %s\n", strerror(errno));
        return 125;
    }
    execvp(command[0], command);
    dprintf(2, "%s: %s\n", command[0], strerror(errno));
    return errno == ENOENT ? 127 : 126;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--reseed") == 0)
        return reseed(argv[2]);
    if (argc >= 5 && strcmp(argv[1], "--keep-capabilities") == 0 && strcmp(argv[3], "--") == 0)
        return keep_capabilities(argv[2], argv + 4);
    int sandbox = argc >= 5 && strcmp(argv[1], "--socket") == 0 && strcmp(argv[3], "--") == 0;
    if (argc > 1 && !sandbox) {
        dprintf(2, "usage: %s [--socket NAME -- COMMAND [ARGUMENT...] | --keep-capabilities N,N... -- COMMAND [ARGUMENT...] | --reseed HEX]\n", argv[0]);
        return 2;
    }
    if (sandbox) {
        chunk = SOCKET_CHUNK;
        /* Nothing the sandbox's start left open goes on to its processes. */
        if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
            for (int fd = 3; fd < 1024; fd++)
                close(fd);
    } else {
        port = open_port();
        if (port < 0) {
            dprintf(2, "PLATFORM-ERROR guest agent: no virtio port %s: %s\n", PORT_NAME, strerror(errno));
            return 1;
        }
    }
    frames = malloc(HEADER + MAX_FRAME);
    for (int i = 0; i < MAX_PROCESSES; i++)
        processes[i].in = processes[i].out = processes[i].err = -1;
    /* What commands leave behind when they end is reaped here, not by init. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);
    sigset_t child;
    sigemptyset(&child);
    sigaddset(&child, SIGCHLD);
    if (sandbox) {
        /* As a machine's first process (a container's pid 1), what would end it is passed on to its command instead. */
        int passed[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
        for (size_t i = 0; i < sizeof passed / sizeof passed[0]; i++)
            sigaddset(&child, passed[i]);
    }
    sigprocmask(SIG_BLOCK, &child, NULL);
    int signals = signalfd(-1, &child, SFD_NONBLOCK | SFD_CLOEXEC);

    if (sandbox) {
        /* Without its socket the sandbox still runs; its host then enters it the slow way. */
        listener = listen_on(argv[2]);
        main_pid = run_main(argv + 4);
        if (main_pid < 0) {
            dprintf(2, "%s: %s\n", argv[4], strerror(errno));
            return 126;
        }
    } else {
        /* Says HELLO as soon as a host connects (the write waits for one), and again after every host that leaves. */
        send_frame(HELLO, 0, greeting, sizeof greeting - 1);
    }
    for (;;) {
        struct pollfd fds[3 + 3 * MAX_PROCESSES];
        struct process *owners[3 + 3 * MAX_PROCESSES];
        int kinds[3 + 3 * MAX_PROCESSES];
        nfds_t count = 0;
        fds[count] = (struct pollfd){ .fd = signals, .events = POLLIN };
        owners[count++] = NULL;
        if (listener >= 0) {
            fds[count] = (struct pollfd){ .fd = listener, .events = POLLIN };
            owners[count++] = NULL;
        }
        if (port >= 0 && pending_input() < MAX_PENDING_INPUT) {
            fds[count] = (struct pollfd){ .fd = port, .events = POLLIN };
            owners[count++] = NULL;
        }
        for (int i = 0; i < MAX_PROCESSES; i++) {
            struct process *p = &processes[i];
            if (p->pid <= 0)
                continue;
            if (p->out >= 0) {
                fds[count] = (struct pollfd){ .fd = p->out, .events = POLLIN };
                kinds[count] = OUTPUT;
                owners[count++] = p;
            }
            if (p->err >= 0) {
                fds[count] = (struct pollfd){ .fd = p->err, .events = POLLIN };
                kinds[count] = ERRORS;
                owners[count++] = p;
            }
            if (p->in >= 0 && p->pending_length > 0) {
                fds[count] = (struct pollfd){ .fd = p->in, .events = POLLOUT };
                kinds[count] = INPUT;
                owners[count++] = p;
            }
        }
        if (poll(fds, count, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        for (nfds_t i = 0; i < count; i++) {
            if (fds[i].revents == 0)
                continue;
            if (fds[i].fd == signals) {
                reap(signals);
            } else if (fds[i].fd == listener) {
                accept_host();
                break;
            } else if (fds[i].fd == port) {
                if (!read_port()) {
                    kill_all();
                    frames_length = 0;
                    if (sandbox) {
                        close(port);
                        port = -1;
                    } else {
                        send_frame(HELLO, 0, greeting, sizeof greeting - 1);
                    }
                }
                /* What the port's frames did may have closed or reused the descriptors below. */
                break;
            } else {
                struct process *p = owners[i];
                if (p->pid <= 0)
                    continue;
                if (kinds[i] == OUTPUT && fds[i].fd == p->out)
                    relay(p, &p->out, OUTPUT);
                else if (kinds[i] == ERRORS && fds[i].fd == p->err)
                    relay(p, &p->err, ERRORS);
                else if (kinds[i] == INPUT && fds[i].fd == p->in)
                    flush_input(p);
            }
        }
    }
}
