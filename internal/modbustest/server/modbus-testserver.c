/*
 * modbus-testserver — a small, independent Modbus server for causeway's tests.
 *
 *   modbus-testserver --tcp 127.0.0.1:0 [options]
 *   modbus-testserver --rtu /path/to/pty --baud 9600 [--parity N|E|O]
 *                     [--data-bits 8] [--stop-bits 1] [options]
 *   options:
 *     --units 1,2,3        unit ids served (default 1); each has its own map of
 *                          65536 coils, discrete inputs, holding and input registers
 *     --init FILE          lines "UNIT TABLE ADDRESS VALUE..." (TABLE: coil|discrete|
 *                          holding|input; values decimal or 0x hex; '#' comments)
 *     --holes U:TABLE:A[-B],...  addresses that do not exist (exception 2)
 *     --silence-us N       RTU: override the 3.5-character silence (microseconds)
 *     --debug              libmodbus debug output on stderr
 *
 * stdout, one line each, flushed:
 *   READY tcp 127.0.0.1:PORT | READY rtu PATH        once serving
 *   REQ unit=U fc=F addr=A count=C                  every request received
 *   REP unit=U fc=F status=ok|exception=N|muted|corrupted|delayed=MS
 *                                                   after its reply (or non-reply)
 *   BAD crc|short|long|mbap ...                     a frame that was ignored
 *   CONN open id=N | CONN close id=N                TCP clients
 *   OK ... | ERR ...                                answers to control commands
 * stdin, one control command a line: mute U | unmute U | delay U MS |
 *   corrupt U N | set U TABLE ADDR VALUE... | get U TABLE ADDR COUNT |
 *   hole U TABLE A[-B] | unhole U TABLE A[-B] | counters | reset-counters | quit.
 *   End of file on stdin stops the server too, so that it never outlives the
 *   process that drives it.
 *
 * Units: a muted unit, and in RTU a unit that is not served, read the request
 * and answer nothing (REP status=muted; a muted unit does not apply writes).
 * In TCP a unit that is not served answers exception 11 (gateway target
 * failed to respond). RTU unit 0 is the broadcast: every unit that is not
 * muted applies it, nobody answers (REP unit=0 status=ok).
 * A REP line's status is the first that applies: muted, corrupted,
 * delayed=MS (the reply may still be an exception), exception=N, ok.
 * Holes: a request whose read or write range touches one answers exception 2,
 * after the quantity checks (exception 3) as the Modbus spec orders them.
 *
 * What comes from libmodbus (3.1.x), and what is ours:
 *   - libmodbus: the storage (one modbus_mapping_t per unit), every reply's
 *     encoding and the request semantics (modbus_reply / modbus_reply_exception:
 *     reads, writes, quantity and address checks, MBAP header or RTU address +
 *     CRC), the serial port set-up (modbus_new_rtu + modbus_connect: termios for
 *     baud, parity, data and stop bits) and the TCP listening socket
 *     (modbus_new_tcp + modbus_tcp_listen).
 *   - ours: request framing. libmodbus's RTU receive drops every request whose
 *     address is not the single slave set with modbus_set_slave, and its
 *     modbus_receive blocks on one client, so requests are framed here: RTU by
 *     a 3.5-character silence plus a CRC check, TCP by the MBAP length, over a
 *     ppoll loop that serves the serial line or many TCP clients, stdin and
 *     timers together.
 *   - ours: fault injection. libmodbus writes each reply into one end of a
 *     datagram socketpair that we install as its "socket" (modbus_set_socket);
 *     we read the bytes back and then send them, drop them (mute), delay them,
 *     truncate them (TCP corrupt: only the first half of the ADU) or break
 *     their CRC (RTU corrupt) before writing them to the real client.
 *   - ours: multi-unit dispatch (the unit byte picks the map), holes, the
 *     control protocol.
 *
 * Build: gcc -O2 -Wall -Wextra -o modbus-testserver modbus-testserver.c \
 *            $(pkg-config --cflags --libs libmodbus)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <modbus.h>

#define NUNITS 256
#define NADDR 65536
#define MAX_CONNS 64
#define MAX_PENDING 1024
#define CONN_BUF 4096
#define RX_BUF 1024
#define CTL_BUF (1 << 20)
#define MAX_TOKENS (NADDR + 16)

enum { T_COIL, T_DISCRETE, T_HOLDING, T_INPUT, T_N };
static const char *table_names[T_N] = {"coil", "discrete", "holding", "input"};

struct unit {
    modbus_mapping_t *map;
    uint8_t *holes[T_N]; /* bitmap of NADDR bits, NULL when the table has none */
    int muted;
    int delay_ms;
    long corrupt; /* replies left to corrupt */
};

struct conn {
    int fd; /* -1: free slot */
    unsigned id;
    uint8_t buf[CONN_BUF];
    int len;
};

/* A reply waiting for its delay. */
struct pending {
    int used;
    int conn; /* TCP connection slot, -1 for the serial line */
    unsigned conn_id;
    int64_t due_us;
    int unit, fc;
    char status[32];
    uint8_t buf[MODBUS_TCP_MAX_ADU_LENGTH];
    int len;
};

struct reqinfo {
    int fc, addr, count; /* for the REQ line */
    int len_ok;          /* the PDU is long enough for its function */
    int qty_ok;          /* quantities and byte counts within the protocol limits */
    int rtable, raddr, rcount; /* range read, rtable -1 when none */
    int wtable, waddr, wcount; /* range written, wtable -1 when none */
};

static struct unit *units[NUNITS];
static modbus_t *ctx;
static int is_rtu;
static int cap_rd = -1, cap_wr = -1; /* reply capture socketpair */

/* TCP */
static int listen_fd = -1;
static struct conn conns[MAX_CONNS];
static unsigned next_conn_id = 1;

/* RTU */
static int serial_fd = -1;
static uint8_t rx[RX_BUF];
static int rx_len;
static int rx_overrun;
static int64_t rx_last_us;
static int64_t silence_us;

static struct pending pendings[MAX_PENDING];

static long n_requests, n_replies, n_bad;
static volatile sig_atomic_t got_signal;
static int quitting;

/* ------------------------------------------------------------------------ */

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("modbus-testserver: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_signal(int sig)
{
    got_signal = sig;
}

/* Modbus RTU CRC16 (poly 0xA001, init 0xFFFF), low byte first on the wire.
 * libmodbus has one but does not export it. */
static uint16_t crc16(const uint8_t *p, int n)
{
    uint16_t crc = 0xFFFF;
    for (int i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1) ? (crc >> 1) ^ 0xA001 : crc >> 1;
    }
    return crc;
}

/* parse_num reads a decimal or 0x-hex number within [min, max]. */
static int parse_num(const char *s, long min, long max, long *v)
{
    char *end;
    int base = 10;
    if (s == NULL || *s == '\0')
        return -1;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
        if (*s == '\0')
            return -1;
    }
    if (*s == '-' || *s == '+' || *s == ' ')
        return -1;
    errno = 0;
    long x = strtol(s, &end, base);
    if (errno != 0 || *end != '\0' || x < min || x > max)
        return -1;
    *v = x;
    return 0;
}

static int parse_table(const char *s)
{
    for (int i = 0; i < T_N; i++)
        if (strcmp(s, table_names[i]) == 0)
            return i;
    return -1;
}

/* parse_range reads "A" or "A-B" (inclusive) into [*lo, *hi]. */
static int parse_range(const char *s, long *lo, long *hi)
{
    char buf[64];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    char *dash = strchr(buf, '-');
    if (dash)
        *dash = '\0';
    if (parse_num(buf, 0, NADDR - 1, lo) != 0)
        return -1;
    if (!dash) {
        *hi = *lo;
        return 0;
    }
    if (parse_num(dash + 1, 0, NADDR - 1, hi) != 0 || *hi < *lo)
        return -1;
    return 0;
}

static struct unit *unit_arg(const char *s, char *err, size_t errlen)
{
    long u;
    if (parse_num(s, 0, NUNITS - 1, &u) != 0) {
        snprintf(err, errlen, "bad unit %s", s);
        return NULL;
    }
    if (units[u] == NULL) {
        snprintf(err, errlen, "unit %ld is not served", u);
        return NULL;
    }
    return units[u];
}

/* ---- storage (libmodbus's modbus_mapping_t) ------------------------------ */

static int set_values(struct unit *u, int table, long addr, char **vals, int n,
                      char *err, size_t errlen)
{
    long v;
    if (addr + n > NADDR) {
        snprintf(err, errlen, "address %ld + %d values is past 65535", addr, n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int bit = table == T_COIL || table == T_DISCRETE;
        if (parse_num(vals[i], 0, bit ? 1 : 0xFFFF, &v) != 0) {
            snprintf(err, errlen, "bad %s value %s", bit ? "bit (0/1)" : "register (0..65535)", vals[i]);
            return -1;
        }
    }
    for (int i = 0; i < n; i++) {
        parse_num(vals[i], 0, 0xFFFF, &v);
        switch (table) {
        case T_COIL: u->map->tab_bits[addr + i] = (uint8_t)v; break;
        case T_DISCRETE: u->map->tab_input_bits[addr + i] = (uint8_t)v; break;
        case T_HOLDING: u->map->tab_registers[addr + i] = (uint16_t)v; break;
        case T_INPUT: u->map->tab_input_registers[addr + i] = (uint16_t)v; break;
        }
    }
    return 0;
}

static unsigned get_value(struct unit *u, int table, long addr)
{
    switch (table) {
    case T_COIL: return u->map->tab_bits[addr];
    case T_DISCRETE: return u->map->tab_input_bits[addr];
    case T_HOLDING: return u->map->tab_registers[addr];
    default: return u->map->tab_input_registers[addr];
    }
}

static void set_holes(struct unit *u, int table, long lo, long hi, int on)
{
    if (u->holes[table] == NULL) {
        if (!on)
            return;
        u->holes[table] = calloc(NADDR / 8, 1);
        if (u->holes[table] == NULL)
            die("out of memory");
    }
    for (long a = lo; a <= hi; a++) {
        if (on)
            u->holes[table][a >> 3] |= (uint8_t)(1u << (a & 7));
        else
            u->holes[table][a >> 3] &= (uint8_t)~(1u << (a & 7));
    }
}

static int touches_hole(const struct unit *u, int table, int addr, int count)
{
    if (table < 0 || u->holes[table] == NULL)
        return 0;
    for (long a = addr; a < (long)addr + count && a < NADDR; a++)
        if (u->holes[table][a >> 3] & (1u << (a & 7)))
            return 1;
    return 0;
}

/* ---- tokens -------------------------------------------------------------- */

static char **tokens;

/* tokenize splits line in place at blanks; a '#' starts a comment. */
static int tokenize(char *line)
{
    int n = 0;
    char *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    for (char *save = NULL, *t = strtok_r(line, " \t\r\n", &save); t != NULL;
         t = strtok_r(NULL, " \t\r\n", &save)) {
        if (n == MAX_TOKENS)
            return -1;
        tokens[n++] = t;
    }
    return n;
}

/* ---- start-up options ---------------------------------------------------- */

static void parse_units(const char *s)
{
    char *copy = strdup(s), *save = NULL;
    if (copy == NULL)
        die("out of memory");
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        long u;
        if (parse_num(t, is_rtu ? 1 : 0, is_rtu ? 247 : 255, &u) != 0)
            die("--units: bad unit id %s (RTU: 1..247, TCP: 0..255)", t);
        if (units[u] == NULL) {
            units[u] = calloc(1, sizeof(struct unit));
            if (units[u] == NULL)
                die("out of memory");
        }
    }
    free(copy);
}

static void parse_holes(const char *s)
{
    char *copy = strdup(s), *save = NULL;
    char err[128];
    if (copy == NULL)
        die("out of memory");
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *c1 = strchr(t, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL)
            die("--holes: %s is not UNIT:TABLE:ADDR[-ADDR]", t);
        *c1 = *c2 = '\0';
        struct unit *u = unit_arg(t, err, sizeof err);
        if (u == NULL)
            die("--holes: %s", err);
        int table = parse_table(c1 + 1);
        if (table < 0)
            die("--holes: bad table %s (coil|discrete|holding|input)", c1 + 1);
        long lo, hi;
        if (parse_range(c2 + 1, &lo, &hi) != 0)
            die("--holes: bad address range %s", c2 + 1);
        set_holes(u, table, lo, hi, 1);
    }
    free(copy);
}

static void load_init(const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    char err[160];
    if (f == NULL)
        die("--init %s: %s", path, strerror(errno));
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        int n = tokenize(line);
        if (n == 0)
            continue;
        if (n < 4)
            die("%s:%d: want UNIT TABLE ADDRESS VALUE...", path, lineno);
        struct unit *u = unit_arg(tokens[0], err, sizeof err);
        if (u == NULL)
            die("%s:%d: %s", path, lineno, err);
        int table = parse_table(tokens[1]);
        if (table < 0)
            die("%s:%d: bad table %s (coil|discrete|holding|input)", path, lineno, tokens[1]);
        long addr;
        if (parse_num(tokens[2], 0, NADDR - 1, &addr) != 0)
            die("%s:%d: bad address %s", path, lineno, tokens[2]);
        if (set_values(u, table, addr, tokens + 3, n - 3, err, sizeof err) != 0)
            die("%s:%d: %s", path, lineno, err);
    }
    free(line);
    fclose(f);
}

/* ---- requests ------------------------------------------------------------ */

static void parse_request(const uint8_t *pdu, int n, struct reqinfo *ri)
{
    memset(ri, 0, sizeof *ri);
    ri->rtable = ri->wtable = -1;
    ri->len_ok = ri->qty_ok = 1;
    if (n < 1) {
        ri->len_ok = 0;
        return;
    }
#define U16(i) ((int)(pdu[(i)] << 8 | pdu[(i) + 1]))
    ri->fc = pdu[0];
    switch (ri->fc) {
    case MODBUS_FC_READ_COILS:
    case MODBUS_FC_READ_DISCRETE_INPUTS:
    case MODBUS_FC_READ_HOLDING_REGISTERS:
    case MODBUS_FC_READ_INPUT_REGISTERS: {
        if (n < 5) {
            ri->len_ok = 0;
            break;
        }
        int bits = ri->fc <= MODBUS_FC_READ_DISCRETE_INPUTS;
        ri->addr = ri->raddr = U16(1);
        ri->count = ri->rcount = U16(3);
        ri->rtable = ri->fc == 1 ? T_COIL : ri->fc == 2 ? T_DISCRETE : ri->fc == 3 ? T_HOLDING : T_INPUT;
        ri->qty_ok = ri->count >= 1 && ri->count <= (bits ? MODBUS_MAX_READ_BITS : MODBUS_MAX_READ_REGISTERS);
        break;
    }
    case MODBUS_FC_WRITE_SINGLE_COIL:
    case MODBUS_FC_WRITE_SINGLE_REGISTER:
        if (n < 5) {
            ri->len_ok = 0;
            break;
        }
        ri->addr = ri->waddr = U16(1);
        ri->count = ri->wcount = 1;
        ri->wtable = ri->fc == MODBUS_FC_WRITE_SINGLE_COIL ? T_COIL : T_HOLDING;
        break;
    case MODBUS_FC_WRITE_MULTIPLE_COILS:
    case MODBUS_FC_WRITE_MULTIPLE_REGISTERS: {
        if (n < 6) {
            ri->len_ok = 0;
            break;
        }
        int bits = ri->fc == MODBUS_FC_WRITE_MULTIPLE_COILS;
        ri->addr = ri->waddr = U16(1);
        ri->count = ri->wcount = U16(3);
        ri->wtable = bits ? T_COIL : T_HOLDING;
        int nbytes = pdu[5];
        ri->qty_ok = ri->count >= 1 &&
                     ri->count <= (bits ? MODBUS_MAX_WRITE_BITS : MODBUS_MAX_WRITE_REGISTERS) &&
                     nbytes == (bits ? (ri->count + 7) / 8 : ri->count * 2);
        if (ri->qty_ok && n < 6 + nbytes)
            ri->len_ok = 0;
        break;
    }
    case MODBUS_FC_MASK_WRITE_REGISTER:
        if (n < 7) {
            ri->len_ok = 0;
            break;
        }
        ri->addr = ri->waddr = U16(1);
        ri->count = ri->wcount = 1;
        ri->wtable = T_HOLDING;
        break;
    case MODBUS_FC_WRITE_AND_READ_REGISTERS: {
        if (n < 10) {
            ri->len_ok = 0;
            break;
        }
        ri->addr = ri->raddr = U16(1);
        ri->count = ri->rcount = U16(3);
        ri->waddr = U16(5);
        ri->wcount = U16(7);
        ri->rtable = ri->wtable = T_HOLDING;
        int nbytes = pdu[9];
        ri->qty_ok = ri->rcount >= 1 && ri->rcount <= MODBUS_MAX_WR_READ_REGISTERS &&
                     ri->wcount >= 1 && ri->wcount <= MODBUS_MAX_WR_WRITE_REGISTERS &&
                     nbytes == ri->wcount * 2;
        if (ri->qty_ok && n < 10 + nbytes)
            ri->len_ok = 0;
        break;
    }
    default:
        break; /* libmodbus answers (FC 7, 17) or says illegal function */
    }
#undef U16
}

/* capture returns the reply libmodbus just wrote into the capture socket. */
static int capture(uint8_t *rsp, int rsp_cap)
{
    int len = 0;
    for (;;) {
        ssize_t n = recv(cap_rd, rsp, (size_t)rsp_cap, MSG_DONTWAIT);
        if (n < 0)
            break;
        len = (int)n; /* one datagram per reply; keep the last */
    }
    return len;
}

/* build_reply lets libmodbus handle the request and returns the reply ADU it
 * wrote into the capture socket (0 bytes: it sent nothing). */
static int build_reply(struct unit *u, int unit, const uint8_t *adu, int adu_len,
                       const struct reqinfo *ri, uint8_t *rsp, int rsp_cap)
{
    uint8_t req[MODBUS_TCP_MAX_ADU_LENGTH + 16];

    /* modbus_reply may look a few bytes past a short request: pad it. */
    memset(req, 0, sizeof req);
    memcpy(req, adu, adu_len);
    modbus_set_slave(ctx, unit);
    if (u == NULL)
        modbus_reply_exception(ctx, req, MODBUS_EXCEPTION_GATEWAY_TARGET);
    else if (!ri->len_ok || !ri->qty_ok)
        modbus_reply_exception(ctx, req, MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE);
    else if (touches_hole(u, ri->rtable, ri->raddr, ri->rcount) ||
             touches_hole(u, ri->wtable, ri->waddr, ri->wcount))
        modbus_reply_exception(ctx, req, MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS);
    else
        modbus_reply(ctx, req, adu_len, u->map);
    int len = capture(rsp, rsp_cap);
    if (len == 0 && !(is_rtu && unit == MODBUS_BROADCAST_ADDRESS)) {
        /* libmodbus 3.1 sends nothing for what it does not implement
         * (FC 7 read exception status): say illegal function. */
        modbus_reply_exception(ctx, req, MODBUS_EXCEPTION_ILLEGAL_FUNCTION);
        len = capture(rsp, rsp_cap);
    }
    return len;
}

static void conn_close(int ci);

static void write_all(int fd, const uint8_t *p, int n)
{
    int64_t deadline = now_us() + 1000000;
    while (n > 0) {
        ssize_t w = is_rtu ? write(fd, p, (size_t)n) : send(fd, p, (size_t)n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (int)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN && now_us() < deadline) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            poll(&pfd, 1, 10);
            continue;
        }
        fprintf(stderr, "modbus-testserver: write reply: %s\n", w < 0 ? strerror(errno) : "short write");
        return;
    }
}

static void send_reply(int ci, const uint8_t *p, int n)
{
    if (n <= 0)
        return;
    if (is_rtu)
        write_all(serial_fd, p, n);
    else if (ci >= 0 && conns[ci].fd >= 0)
        write_all(conns[ci].fd, p, n);
    n_replies++;
}

static void handle_request(int ci, const uint8_t *adu, int adu_len)
{
    int hl = is_rtu ? 1 : 7;
    int unit = adu[hl - 1];
    int pdu_len = adu_len - hl - (is_rtu ? 2 : 0);
    struct reqinfo ri;
    uint8_t rsp[MODBUS_TCP_MAX_ADU_LENGTH + 16];

    parse_request(adu + hl, pdu_len, &ri);
    n_requests++;
    out("REQ unit=%d fc=%d addr=%d count=%d", unit, ri.fc, ri.addr, ri.count);

    if (is_rtu && unit == MODBUS_BROADCAST_ADDRESS) {
        /* Broadcast: every unit that is not muted applies it; nobody answers. */
        for (int i = 1; i < NUNITS; i++)
            if (units[i] && !units[i]->muted)
                build_reply(units[i], 0, adu, adu_len, &ri, rsp, sizeof rsp);
        out("REP unit=0 fc=%d status=ok", ri.fc);
        return;
    }
    struct unit *u = units[unit];
    if ((u == NULL && is_rtu) || (u != NULL && u->muted)) {
        /* Muted, or no such device on the line: read it, answer nothing. */
        out("REP unit=%d fc=%d status=muted", unit, ri.fc);
        return;
    }

    int len = build_reply(u, unit, adu, adu_len, &ri, rsp, sizeof rsp);
    int exc = len > hl + 1 && (rsp[hl] & 0x80) ? rsp[hl + 1] : 0;
    int delay = u ? u->delay_ms : 0;
    char status[32];
    if (u && u->corrupt > 0 && len > 0) {
        u->corrupt--;
        if (is_rtu) {
            rsp[len - 2] ^= 0xA5; /* the CRC no longer matches */
            rsp[len - 1] ^= 0x5A;
        } else {
            len /= 2; /* a truncated ADU */
        }
        snprintf(status, sizeof status, "corrupted");
    } else if (delay > 0) {
        snprintf(status, sizeof status, "delayed=%d", delay);
    } else if (exc) {
        snprintf(status, sizeof status, "exception=%d", exc);
    } else {
        snprintf(status, sizeof status, "ok");
    }

    if (delay > 0) {
        for (int i = 0; i < MAX_PENDING; i++) {
            struct pending *p = &pendings[i];
            if (p->used)
                continue;
            p->used = 1;
            p->conn = ci;
            p->conn_id = ci >= 0 ? conns[ci].id : 0;
            p->due_us = now_us() + (int64_t)delay * 1000;
            p->unit = unit;
            p->fc = ri.fc;
            snprintf(p->status, sizeof p->status, "%s", status);
            memcpy(p->buf, rsp, (size_t)len);
            p->len = len;
            return;
        }
        fprintf(stderr, "modbus-testserver: too many delayed replies, answering now\n");
    }
    send_reply(ci, rsp, len);
    out("REP unit=%d fc=%d status=%s", unit, ri.fc, status);
}

static void run_pendings(int64_t now, int flush_all)
{
    /* Oldest due first, so that replies with the same delay keep their order. */
    for (;;) {
        struct pending *best = NULL;
        for (int i = 0; i < MAX_PENDING; i++) {
            struct pending *p = &pendings[i];
            if (p->used && (flush_all || p->due_us <= now) && (best == NULL || p->due_us < best->due_us))
                best = p;
        }
        if (best == NULL)
            return;
        if (!flush_all) {
            if (best->conn < 0 || (conns[best->conn].fd >= 0 && conns[best->conn].id == best->conn_id))
                send_reply(best->conn, best->buf, best->len);
        }
        out("REP unit=%d fc=%d status=%s", best->unit, best->fc, best->status);
        best->used = 0;
    }
}

/* ---- RTU ----------------------------------------------------------------- */

static void rtu_frame_done(void)
{
    int n = rx_len;
    rx_len = 0;
    if (rx_overrun) {
        rx_overrun = 0;
        n_bad++;
        out("BAD long len>%d", RX_BUF);
        return;
    }
    if (n < 4) {
        n_bad++;
        out("BAD short len=%d", n);
        return;
    }
    if (n > MODBUS_RTU_MAX_ADU_LENGTH) {
        n_bad++;
        out("BAD long len=%d", n);
        return;
    }
    uint16_t crc = crc16(rx, n - 2);
    if ((rx[n - 2] | rx[n - 1] << 8) != crc) {
        n_bad++;
        out("BAD crc len=%d unit=%d", n, rx[0]);
        return;
    }
    handle_request(-1, rx, n);
}

static void rtu_read(void)
{
    for (;;) {
        uint8_t buf[256];
        ssize_t n = read(serial_fd, buf, sizeof buf);
        if (n > 0) {
            int room = RX_BUF - rx_len;
            if (n > room) {
                rx_overrun = 1;
                n = room;
            }
            memcpy(rx + rx_len, buf, (size_t)n);
            rx_len += (int)n;
            rx_last_us = now_us();
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        fprintf(stderr, "modbus-testserver: serial line closed: %s\n", n < 0 ? strerror(errno) : "end of file");
        exit(1);
    }
}

/* ---- TCP ----------------------------------------------------------------- */

static void tcp_accept(void)
{
    for (;;) {
        struct sockaddr_in sa;
        socklen_t sl = sizeof sa;
        int fd = accept4(listen_fd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR)
                fprintf(stderr, "modbus-testserver: accept: %s\n", strerror(errno));
            return;
        }
        int ci = -1;
        for (int i = 0; i < MAX_CONNS; i++)
            if (conns[i].fd < 0) {
                ci = i;
                break;
            }
        if (ci < 0) {
            fprintf(stderr, "modbus-testserver: more than %d clients, closing the new one\n", MAX_CONNS);
            close(fd);
            continue;
        }
        conns[ci].fd = fd;
        conns[ci].id = next_conn_id++;
        conns[ci].len = 0;
        out("CONN open id=%u peer=%s:%d", conns[ci].id, inet_ntoa(sa.sin_addr), ntohs(sa.sin_port));
    }
}

static void conn_close(int ci)
{
    struct conn *c = &conns[ci];
    if (c->fd < 0)
        return;
    close(c->fd);
    c->fd = -1;
    c->len = 0;
    out("CONN close id=%u", c->id);
}

static void tcp_read(int ci)
{
    struct conn *c = &conns[ci];
    ssize_t n = read(c->fd, c->buf + c->len, (size_t)(CONN_BUF - c->len));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(ci);
        return;
    }
    c->len += (int)n;
    int off = 0;
    while (c->len - off >= 7) {
        const uint8_t *h = c->buf + off;
        int proto = h[2] << 8 | h[3];
        int plen = h[4] << 8 | h[5];
        if (proto != 0 || plen < 2 || plen > MODBUS_TCP_MAX_ADU_LENGTH - 6) {
            n_bad++;
            out("BAD mbap id=%u protocol=%d length=%d", c->id, proto, plen);
            conn_close(ci);
            return;
        }
        if (c->len - off < 6 + plen)
            break;
        handle_request(ci, h, 6 + plen);
        off += 6 + plen;
    }
    memmove(c->buf, c->buf + off, (size_t)(c->len - off));
    c->len -= off;
}

/* ---- control ------------------------------------------------------------- */

static void control(char *line)
{
    char err[200];
    int n = tokenize(line);
    struct unit *u;
    long v, addr, cnt;

    if (n < 0) {
        out("ERR too many words");
        return;
    }
    if (n == 0)
        return;
    const char *cmd = tokens[0];
    if ((strcmp(cmd, "mute") == 0 || strcmp(cmd, "unmute") == 0) && n == 2) {
        if ((u = unit_arg(tokens[1], err, sizeof err)) == NULL)
            goto fail;
        u->muted = cmd[0] == 'm';
        out("OK %s %s", cmd, tokens[1]);
    } else if (strcmp(cmd, "delay") == 0 && n == 3) {
        if ((u = unit_arg(tokens[1], err, sizeof err)) == NULL)
            goto fail;
        if (parse_num(tokens[2], 0, 3600000, &v) != 0) {
            snprintf(err, sizeof err, "bad delay %s (milliseconds)", tokens[2]);
            goto fail;
        }
        u->delay_ms = (int)v;
        out("OK delay %s %ld", tokens[1], v);
    } else if (strcmp(cmd, "corrupt") == 0 && n == 3) {
        if ((u = unit_arg(tokens[1], err, sizeof err)) == NULL)
            goto fail;
        if (parse_num(tokens[2], 0, 1000000000, &v) != 0) {
            snprintf(err, sizeof err, "bad count %s", tokens[2]);
            goto fail;
        }
        u->corrupt = v;
        out("OK corrupt %s %ld", tokens[1], v);
    } else if (strcmp(cmd, "set") == 0 && n >= 5) {
        int table;
        if ((u = unit_arg(tokens[1], err, sizeof err)) == NULL)
            goto fail;
        if ((table = parse_table(tokens[2])) < 0) {
            snprintf(err, sizeof err, "bad table %s (coil|discrete|holding|input)", tokens[2]);
            goto fail;
        }
        if (parse_num(tokens[3], 0, NADDR - 1, &addr) != 0) {
            snprintf(err, sizeof err, "bad address %s", tokens[3]);
            goto fail;
        }
        if (set_values(u, table, addr, tokens + 4, n - 4, err, sizeof err) != 0)
            goto fail;
        out("OK set %d", n - 4);
    } else if (strcmp(cmd, "get") == 0 && n == 5) {
        int table;
        if ((u = unit_arg(tokens[1], err, sizeof err)) == NULL)
            goto fail;
        if ((table = parse_table(tokens[2])) < 0) {
            snprintf(err, sizeof err, "bad table %s (coil|discrete|holding|input)", tokens[2]);
            goto fail;
        }
        if (parse_num(tokens[3], 0, NADDR - 1, &addr) != 0 ||
            parse_num(tokens[4], 1, NADDR - addr, &cnt) != 0) {
            snprintf(err, sizeof err, "bad address range %s+%s", tokens[3], tokens[4]);
            goto fail;
        }
        fputs("OK", stdout);
        for (long i = 0; i < cnt; i++)
            printf(" %u", get_value(u, table, addr + i));
        out("%s", "");
    } else if ((strcmp(cmd, "hole") == 0 || strcmp(cmd, "unhole") == 0) && n == 4) {
        int table;
        long lo, hi;
        if ((u = unit_arg(tokens[1], err, sizeof err)) == NULL)
            goto fail;
        if ((table = parse_table(tokens[2])) < 0) {
            snprintf(err, sizeof err, "bad table %s (coil|discrete|holding|input)", tokens[2]);
            goto fail;
        }
        if (parse_range(tokens[3], &lo, &hi) != 0) {
            snprintf(err, sizeof err, "bad address range %s", tokens[3]);
            goto fail;
        }
        set_holes(u, table, lo, hi, cmd[0] == 'h');
        out("OK %s %s %s %s", cmd, tokens[1], tokens[2], tokens[3]);
    } else if (strcmp(cmd, "counters") == 0 && n == 1) {
        out("OK requests=%ld replies=%ld bad=%ld", n_requests, n_replies, n_bad);
    } else if (strcmp(cmd, "reset-counters") == 0 && n == 1) {
        n_requests = n_replies = n_bad = 0;
        out("OK reset-counters");
    } else if (strcmp(cmd, "quit") == 0 && n == 1) {
        out("OK quit");
        quitting = 1;
    } else {
        out("ERR unknown command or wrong arguments: %s (mute U | unmute U | delay U MS | corrupt U N | "
            "set U TABLE ADDR VALUE... | get U TABLE ADDR COUNT | hole U TABLE A[-B] | unhole U TABLE A[-B] | "
            "counters | reset-counters | quit)", cmd);
    }
    return;
fail:
    out("ERR %s", err);
}

static char *ctl_buf;
static int ctl_len;
static int ctl_discard; /* inside a line that was too long */

/* stdin_read returns 0 at end of file. */
static int stdin_read(void)
{
    ssize_t n = read(STDIN_FILENO, ctl_buf + ctl_len, (size_t)(CTL_BUF - 1 - ctl_len));
    if (n < 0)
        return errno == EAGAIN || errno == EINTR;
    if (n == 0)
        return 0;
    ctl_len += (int)n;
    int start = 0;
    for (int i = 0; i < ctl_len; i++) {
        if (ctl_buf[i] != '\n')
            continue;
        ctl_buf[i] = '\0';
        if (ctl_discard)
            ctl_discard = 0;
        else
            control(ctl_buf + start);
        start = i + 1;
        if (quitting)
            return 1;
    }
    memmove(ctl_buf, ctl_buf + start, (size_t)(ctl_len - start));
    ctl_len -= start;
    if (ctl_len == CTL_BUF - 1) {
        out("ERR line too long");
        ctl_len = 0;
        ctl_discard = 1;
    }
    return 1;
}

/* ---- main ---------------------------------------------------------------- */

static void usage(void)
{
    fputs("usage: modbus-testserver --tcp HOST:PORT | --rtu DEVICE [--baud 9600] [--parity N|E|O]\n"
          "         [--data-bits 8] [--stop-bits 1] [--silence-us N]\n"
          "         [--units 1,2] [--init FILE] [--holes U:TABLE:A[-B],...] [--debug]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *tcp = NULL, *rtu = NULL, *units_arg = "1", *init = NULL, *holes = NULL;
    long baud = 9600, data_bits = 8, stop_bits = 1, silence = -1;
    char parity = 'N';
    int debug = 0;
    static const struct option longopts[] = {
        {"tcp", required_argument, 0, 't'},       {"rtu", required_argument, 0, 'r'},
        {"baud", required_argument, 0, 'b'},      {"parity", required_argument, 0, 'p'},
        {"data-bits", required_argument, 0, 'd'}, {"stop-bits", required_argument, 0, 's'},
        {"units", required_argument, 0, 'u'},     {"init", required_argument, 0, 'i'},
        {"holes", required_argument, 0, 'H'},     {"silence-us", required_argument, 0, 'S'},
        {"debug", no_argument, 0, 'D'},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 't': tcp = optarg; break;
        case 'r': rtu = optarg; break;
        case 'b':
            if (parse_num(optarg, 50, 4000000, &baud) != 0)
                die("bad --baud %s", optarg);
            break;
        case 'p':
            if (strlen(optarg) != 1 || !strchr("NEO", optarg[0]))
                die("bad --parity %s (N, E or O)", optarg);
            parity = optarg[0];
            break;
        case 'd':
            if (parse_num(optarg, 5, 8, &data_bits) != 0)
                die("bad --data-bits %s", optarg);
            break;
        case 's':
            if (parse_num(optarg, 1, 2, &stop_bits) != 0)
                die("bad --stop-bits %s", optarg);
            break;
        case 'u': units_arg = optarg; break;
        case 'i': init = optarg; break;
        case 'H': holes = optarg; break;
        case 'S':
            if (parse_num(optarg, 0, 10000000, &silence) != 0)
                die("bad --silence-us %s", optarg);
            break;
        case 'D': debug = 1; break;
        default: usage();
        }
    }
    if (optind != argc || (tcp == NULL) == (rtu == NULL))
        usage();
    is_rtu = rtu != NULL;

    tokens = malloc(sizeof(char *) * MAX_TOKENS);
    ctl_buf = malloc(CTL_BUF);
    if (tokens == NULL || ctl_buf == NULL)
        die("out of memory");
    parse_units(units_arg);
    for (int i = 0; i < NUNITS; i++) {
        if (units[i] == NULL)
            continue;
        units[i]->map = modbus_mapping_new(NADDR, NADDR, NADDR, NADDR);
        if (units[i]->map == NULL)
            die("modbus_mapping_new: %s", modbus_strerror(errno));
    }
    if (holes)
        parse_holes(holes);
    if (init)
        load_init(init);
    for (int i = 0; i < MAX_CONNS; i++)
        conns[i].fd = -1;

    /* Signals: handled only inside ppoll, so that none is lost between the check and the wait. */
    sigset_t block, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int sp[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp) != 0)
        die("socketpair: %s", strerror(errno));
    cap_rd = sp[0];
    cap_wr = sp[1];

    if (is_rtu) {
        ctx = modbus_new_rtu(rtu, (int)baud, parity, (int)data_bits, (int)stop_bits);
        if (ctx == NULL)
            die("modbus_new_rtu %s: %s", rtu, modbus_strerror(errno));
        modbus_set_debug(ctx, debug);
        if (modbus_connect(ctx) != 0)
            die("open %s: %s", rtu, modbus_strerror(errno));
        serial_fd = modbus_get_socket(ctx);
        fcntl(serial_fd, F_SETFL, fcntl(serial_fd, F_GETFL) | O_NONBLOCK);
        fcntl(serial_fd, F_SETFD, FD_CLOEXEC);
        /* libmodbus leaves VMIN at 0, where a read without data returns 0,
         * like end of file; with VMIN 1 it is EAGAIN (the fd is non-blocking). */
        struct termios tio;
        if (tcgetattr(serial_fd, &tio) == 0) {
            tio.c_cc[VMIN] = 1;
            tio.c_cc[VTIME] = 0;
            tcsetattr(serial_fd, TCSANOW, &tio);
        }
        tcflush(serial_fd, TCIOFLUSH);
        /* 3.5 characters; the spec fixes 1750 us above 19200 baud. */
        int bits = 1 + (int)data_bits + (parity != 'N') + (int)stop_bits;
        silence_us = baud > 19200 ? 1750 : (3500000LL * bits + baud - 1) / baud;
        if (silence >= 0)
            silence_us = silence;
    } else {
        char host[64];
        const char *colon = strrchr(tcp, ':');
        long port;
        if (colon == NULL || colon - tcp >= (long)sizeof host || parse_num(colon + 1, 0, 65535, &port) != 0)
            die("bad --tcp %s (want IPv4:PORT)", tcp);
        memcpy(host, tcp, (size_t)(colon - tcp));
        host[colon - tcp] = '\0';
        ctx = modbus_new_tcp(host, (int)port);
        if (ctx == NULL)
            die("modbus_new_tcp %s: %s", tcp, modbus_strerror(errno));
        modbus_set_debug(ctx, debug);
        listen_fd = modbus_tcp_listen(ctx, 16);
        if (listen_fd < 0)
            die("listen %s: %s", tcp, modbus_strerror(errno));
        fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
        fcntl(listen_fd, F_SETFD, FD_CLOEXEC);
    }
    /* libmodbus sleeps for the response timeout before some exception replies
     * (to flush the line): keep that to a microsecond. */
    modbus_set_response_timeout(ctx, 0, 1);
    /* From now on libmodbus "sends" into the capture socket. */
    modbus_set_socket(ctx, cap_wr);
    fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);

    if (is_rtu) {
        out("READY rtu %s", rtu);
    } else {
        struct sockaddr_in la;
        socklen_t ll = sizeof la;
        if (getsockname(listen_fd, (struct sockaddr *)&la, &ll) != 0)
            die("getsockname: %s", strerror(errno));
        out("READY tcp %s:%d", inet_ntoa(la.sin_addr), ntohs(la.sin_port));
    }

    int stdin_open = 1;
    struct pollfd pfds[2 + MAX_CONNS];
    int pconn[2 + MAX_CONNS];
    while (!got_signal && !quitting) {
        /* Wake up for the end of an RTU frame's silence or a delayed reply. */
        int64_t now = now_us(), wake_us = INT64_MAX;
        if (is_rtu && rx_len > 0)
            wake_us = rx_last_us + silence_us;
        for (int i = 0; i < MAX_PENDING; i++)
            if (pendings[i].used && pendings[i].due_us < wake_us)
                wake_us = pendings[i].due_us;
        int64_t wait_us = wake_us == INT64_MAX ? -1 : wake_us > now ? wake_us - now : 0;

        int np = 0;
        if (stdin_open) {
            pfds[np] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
            pconn[np++] = -2;
        }
        pfds[np] = (struct pollfd){.fd = is_rtu ? serial_fd : listen_fd, .events = POLLIN};
        pconn[np++] = -1;
        for (int i = 0; i < MAX_CONNS; i++)
            if (conns[i].fd >= 0) {
                pfds[np] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
                pconn[np++] = i;
            }
        struct timespec ts = {.tv_sec = wait_us / 1000000, .tv_nsec = (wait_us % 1000000) * 1000};
        int rc = ppoll(pfds, (nfds_t)np, wait_us >= 0 ? &ts : NULL, &waitmask);
        if (rc < 0 && errno != EINTR)
            die("ppoll: %s", strerror(errno));

        /* A frame whose silence has passed is complete before anything newer is read. */
        if (is_rtu && rx_len > 0 && now_us() - rx_last_us >= silence_us)
            rtu_frame_done();
        for (int i = 0; rc > 0 && i < np; i++) {
            if (pfds[i].revents == 0)
                continue;
            if (pconn[i] == -2) {
                if (!stdin_read())
                    stdin_open = 0, quitting = 1;
            } else if (pconn[i] == -1) {
                if (is_rtu)
                    rtu_read();
                else
                    tcp_accept();
            } else {
                tcp_read(pconn[i]);
            }
        }
        if (is_rtu && rx_len > 0 && now_us() - rx_last_us >= silence_us)
            rtu_frame_done();
        run_pendings(now_us(), 0);
    }

    /* Replies still waiting for their delay are dropped, but logged. */
    run_pendings(now_us(), 1);
    for (int i = 0; i < MAX_CONNS; i++)
        conn_close(i);
    if (listen_fd >= 0)
        close(listen_fd);
    if (is_rtu)
        modbus_set_socket(ctx, serial_fd);
    else
        modbus_set_socket(ctx, -1);
    modbus_close(ctx); /* RTU: restores the line settings and closes it */
    modbus_free(ctx);
    close(cap_rd);
    close(cap_wr);
    for (int i = 0; i < NUNITS; i++) {
        if (units[i] == NULL)
            continue;
        modbus_mapping_free(units[i]->map);
        for (int t = 0; t < T_N; t++)
            free(units[i]->holes[t]);
        free(units[i]);
    }
    free(tokens);
    free(ctl_buf);
    if (got_signal)
        fprintf(stderr, "modbus-testserver: stopped by signal %d\n", (int)got_signal);
    return 0;
}
