# The benchmark's plot: run in the report's plot/ directory with -e "out='FILE.png'"
# (and optionally sub='text for the title').
# Bars are medians, whiskers min and max; the data files come from `bench_driver report`.
set terminal pngcairo noenhanced size 1500,950 font "sans,10"
set output out
if (!exists("sub")) sub = ""
set multiplot layout 2,3 title "geneve-ovs benchmark (medians, whiskers: min-max)\n".sub font "sans,13"
set style fill solid 0.6 border -1
set boxwidth 0.6
set grid ytics
set key off
set xtics rotate by -30 nomirror
set yrange [0:*]
has(f) = system("test -s " . f . " && echo 1 || echo 0") eq "1"

# An empty panel for a part of the run that has no data (a short run, an unavailable option).
nodata = 'set label 9 "no data" at graph 0.45, 0.5; plot [0:1] [0:1] -1; unset label 9'
set title "plugin setup / teardown (direct)"
set ylabel "ms"
if (has("control.dat")) { plot "control.dat" using 0:2:xtic(1) with boxes lc rgb "#4477aa", \
	"" using 0:2:3:4 with yerrorbars lc rgb "black" pt -1 } else { @nodata }

set title "podman run --rm busybox true"
if (has("podman.dat")) { plot "podman.dat" using 0:2:xtic(1) with boxes lc rgb "#66ccee", \
	"" using 0:2:3:4 with yerrorbars lc rgb "black" pt -1 } else { @nodata }

set title "TCP throughput, host 1 -> host 2"
set ylabel "Mbit/s"
if (has("tcp.dat")) { plot "tcp.dat" using 0:2:xtic(1) with boxes lc rgb "#228833", \
	"" using 0:2:3:4 with yerrorbars lc rgb "black" pt -1 } else { @nodata }

set title "round-trip time (ping; whiskers: min-p99)"
set ylabel "ms"
if (has("rtt.dat")) { plot "rtt.dat" using 0:2:xtic(1) with boxes lc rgb "#ccbb44", \
	"" using 0:2:3:4 with yerrorbars lc rgb "black" pt -1 } else { @nodata }

set title "setup time as containers / networks accumulate"
set xtics norotate
set xlabel "n-th container on one network / n-th port / n-th network"
set logscale y
set yrange [*:*]
set key top left
if (has("scale.dat")) { plot "scale.dat" using 1:2 with points pt 7 ps 0.4 lc rgb "#4477aa" title "plugin setup, n-th container", \
	"ovs.dat" using 1:2 with points pt 6 ps 0.4 lc rgb "#999999" title "ovs-vsctl add-port alone (reference)", \
	"networks.dat" using 1:2 with points pt 5 ps 0.5 lc rgb "#ee6677" title "plugin setup, n-th network" } else { @nodata }
unset logscale y
unset xlabel
set key off
set yrange [0:*]

set title "create with N peers"
set xlabel "peers"
if (has("peers.dat")) { plot "peers.dat" using 0:2:xtic(1) with boxes lc rgb "#aa3377", \
	"" using 0:2:3:4 with yerrorbars lc rgb "black" pt -1 } else { @nodata }
unset multiplot
