# gnuplot script written by gtune experiment; rerun with: gnuplot plots.gp
set terminal pngcairo size 900,600 font 'sans,11'
set grid
set key off
set ylabel 'accuracy (mean over tasks)'
set offsets graph 0.05, graph 0.15, graph 0.08, graph 0.08
set output './accuracy_vs_attack.png'
set title 'Utility vs. privacy: accuracy vs. the best attack at the worst step (lower is more private)'
set xlabel 'worst-step reconstruction attack, ROUGE-L F1 (0 = nothing to invert)'
set xrange [0:1.2]
plot 'points.dat' using 3:2 with points pt 7 ps 1.5, '' using 3:2:1 with labels offset 1,0.8 left
set output './accuracy_vs_bytes.png'
set title 'Utility vs. cost: accuracy vs. training bytes on the wire (log scale)'
set xlabel 'bytes per run (all training traffic)'
set autoscale x
set logscale x
set format x '10^{%L}'
plot 'points.dat' using ($4 > 0 ? $4 : 1):2 with points pt 7 ps 1.5, '' using ($4 > 0 ? $4 : 1):2:1 with labels offset 1,0.8 left
set terminal pngcairo size 900,720 font 'sans,11'
unset logscale x
set format x '%g'
set xrange [0:1.05]
set key below box noenhanced
set output './frontier.png'
set title 'Privacy/utility frontier: accuracy vs. the worst step (lower is more private)'
set xlabel 'worst attacked step, best attack ROUGE-L F1'
plot 'frontier.dat' index 0 using 1:2 with linespoints pt 7 ps 1.2 lc 1 title "adversary (privacy.adversary_weight)", '' index 0 using 1:2:3 with labels offset 0.8,0.6 left noenhanced notitle, 'frontier.dat' index 1 using 1:2 with linespoints pt 7 ps 1.2 lc 2 title "g2-noise (strategy.g2_noise)", '' index 1 using 1:2:3 with labels offset 0.8,0.6 left noenhanced notitle, 'frontier.dat' index 2 using 1:2 with linespoints pt 7 ps 1.2 lc 3 title "a1-noise (strategy.noise_std)", '' index 2 using 1:2:3 with labels offset 0.8,0.6 left noenhanced notitle, 'frontier.dat' index 3 using 1:2 with linespoints pt 7 ps 1.2 lc 4 title "clusters-local (privacy.token_clusters)", '' index 3 using 1:2:3 with labels offset 0.8,0.6 left noenhanced notitle, 'frontier.dat' index 4 using 1:2 with linespoints pt 7 ps 1.2 lc 5 title "privatize-input (privacy.adversary_weight)", '' index 4 using 1:2:3 with labels offset 0.8,0.6 left noenhanced notitle, 'frontier.dat' index 5 using 1:2 with points pt 5 ps 1.2 lc rgb 'black' title 'other designs', '' index 5 using 1:2:3 with labels offset 0.8,-0.8 left noenhanced notitle
