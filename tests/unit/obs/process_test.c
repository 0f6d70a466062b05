/* The /proc/net/{netstat,snmp} reader finds a counter by group and name in
 * the paired header/value lines (not in another group with the same field
 * name, not in a group whose value line is missing), and the process and
 * kernel families render with HELP and TYPE. */
#include "test.h"
#include "obs/process.c"

static const char NETSTAT[] =
    "TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops\n"
    "TcpExt: 3 2 17 19\n"
    "IpExt: InNoRoutes ListenOverflows\n"
    "IpExt: 0 99\n";

static const char SNMP[] =
    "Ip: Forwarding DefaultTTL\n"
    "Ip: 1 64\n"
    "Tcp: RtoAlgorithm RtoMin RetransSegs CurrEstab\n"
    "Tcp: 1 200 12345 -1\n"
    "Udp: InDatagrams\n";

static void test_kernel_value(void)
{
    unsigned long long v = 0;
    CHECK(kernel_value(NETSTAT, "TcpExt:", "ListenOverflows", &v));
    CHECK_INT(v, 17);
    CHECK(kernel_value(NETSTAT, "TcpExt:", "ListenDrops", &v));
    CHECK_INT(v, 19);
    CHECK(kernel_value(NETSTAT, "TcpExt:", "SyncookiesSent", &v));
    CHECK_INT(v, 3);
    CHECK(kernel_value(NETSTAT, "IpExt:", "ListenOverflows", &v));
    CHECK_INT(v, 99);
    CHECK(!kernel_value(NETSTAT, "TcpExt:", "TCPSynRetrans", &v));
    CHECK(kernel_value(SNMP, "Tcp:", "RetransSegs", &v));
    CHECK_INT(v, 12345);
    CHECK(!kernel_value(SNMP, "Udp:", "InDatagrams", &v));      /* no value line */
    CHECK(!kernel_value(SNMP, "Tcp:", "Retrans", &v));          /* whole names only */
}

static void test_render(void)
{
    struct arc_sbuf o = { 0 };
    arc_metrics_render_process(&o);
    arc_sbuf_append(&o, "", 1);
    CHECK(strstr(o.p, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ") != NULL);
    CHECK(strstr(o.p, "# TYPE process_resident_memory_bytes gauge\n") != NULL);
    CHECK(strstr(o.p, "# TYPE process_open_fds gauge\nprocess_open_fds ") != NULL);
    CHECK(strstr(o.p, "\nprocess_start_time_seconds ") != NULL);
    CHECK(strstr(o.p, "# TYPE arc_kernel_tcp_retransmitted_segments_total counter\n") != NULL);
    arc_sbuf_dispose(&o);
}

int main(void)
{
    RUN(test_kernel_value);
    RUN(test_render);
    return TEST_REPORT();
}
