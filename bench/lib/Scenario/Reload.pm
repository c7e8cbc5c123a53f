package Scenario::Reload;
# 6. Reload: a graceful restart of N certificates in N SNI virtual hosts
#    while handshakes go on.
#
# The scale scenario's virtual hosts (m1..mN.bench), one server per
# configuration, every peer with its defaults (mod_ocspstaple: its store on;
# mod_ssl: SSLUseStapling with its shmcb cache; mod_md: MDStapling with its
# store; nginx: ssl_stapling) and no stapling (Apache, and nginx for nginx's
# ratio), all on one healthy loopback responder. Once a server is stapling
# (mod_ocspstaple: its status page says so for every certificate; the
# others fetch on demand or in the background, so the names the client uses
# get handshakes until every one of them is stapled), the client runs
# handshakes against several of its vhosts (m1..m8, status_request, full
# handshakes, $RELOAD_RATE/s over $RELOAD_THREADS connections), and after
# reload_pre seconds the parent gets SIGUSR1 (`apache2 -k graceful`; nginx's
# master SIGHUP, `nginx -s reload`). The client goes on until reload_post
# seconds after the new generation serves (Apache: the parent logged
# AH00489 "resuming normal operations" again and a child of the new
# generation is running; nginx: a worker of the new generation runs), then
# stops (SIGUSR1 to hsclient). Figures over all the handshakes of that
# window: p50, p99.9, max, rate, staples. A handshake that arrives while no
# process accepts waits in the listen backlog: its latency is the time the
# restart kept the server from serving; the paced client does not make up
# for the handshakes it could not start meanwhile, so handshakes/s shows
# that time too. The servers get their windows one after the other, so that
# one server's restart never slows another's; each server runs alone on
# core 0 during its window.
#
# The Apache servers' MPM has room for a whole new generation beside the
# old one (ServerLimit 4 for 2 processes): the new children start at once,
# without waiting for the old ones to leave their slots.

use strict;
use warnings;

use BenchKit;
use BenchRun;
use Time::HiRes qw(time sleep);

# The servers: no stapling (Apache, and nginx for nginx's ratio) and every peer.
my @RELOAD_CFGS = ('none', 'nginx-none', @PEERS);
my $RELOAD_RATE = 300;         # handshakes per second across a graceful restart
my $RELOAD_THREADS = 16;       # over this many connections at once
my $RELOAD_NAMES = 8;          # to the vhosts m1..m8.bench

sub run {
    my $n = $P{scale_certs};
    note("reload: a graceful restart of $n SNI virtual hosts under handshakes, "
         . scalar(@RELOAD_CFGS) . ' servers');
    # Pre-signed responses from memory: the servers' cold starts before the
    # windows (1,000 fetches each) wait on the server, not on the responder.
    my $resp = BenchKit::FastResponder->new(dir => $OUT, name => 'responder-reload',
                                            port => $PORT0, pki => $PKI);
    $resp->start;
    my %r;
    for my $cfg (@RELOAD_CFGS) {
        # mod_ocspstaple as installed: its store on (the default), which is
        # what a reload serves the responses from.
        my @store = $cfg eq 'ocspstaple' ? ("OCSPStaplingStore $OUT/reload-store") : ();
        my $h = server($cfg, "reload-$n-$cfg", vhosts => scale_vhosts($n), extra => \@store,
            mpm_conf => [ 'ServerLimit 4', 'StartServers 2', 'ThreadsPerChild 32',
                          'ThreadLimit 32', 'MaxRequestWorkers 64', 'MinSpareThreads 1',
                          'MaxSpareThreads 64' ]);
        my $t0 = time;
        $r{$cfg}{start} = start_served($h, 'm1.bench');
        $r{$cfg}{ready} = reload_ready($h, $cfg, $n);
        $r{$cfg}{ready_secs} = time - $t0;
        $r{$cfg} = { %{ $r{$cfg} }, %{ reload_window($h, $resp, $cfg) } };
        $h->stop;
        note(sprintf('reload: %-10s p99.9 %s ms, max %s ms, %.0f handshakes/s, %d of %d '
                     . 'stapled, serving again %s s after the signal', $cfg,
                     ms($r{$cfg}{p999_ms} // 0), ms($r{$cfg}{max_ms} // 0), $r{$cfg}{rate} // 0,
                     $r{$cfg}{stapled} // 0, $r{$cfg}{handshakes} // 0,
                     defined $r{$cfg}{back} ? sprintf('%.1f', $r{$cfg}{back}) : 'never'));
    }
    $resp->stop;
    return reload_results(\%r, $n);
}

# Before the window, everything stapling: mod_ocspstaple's status page says
# so for every certificate; the others fetch on demand (mod_ssl, nginx per
# worker) or in the background (mod_md), so the client's names get
# handshakes until every one of a sweep is stapled. Returns whether that
# worked out.
sub reload_ready {
    my ($h, $cfg, $n) = @_;
    return 1 if $cfg =~ /none$/;
    # mod_ocspstaple: its start-up round is done (every certificate has a
    # response), and, like the others, the handshakes show it: each child
    # takes the round's responses at its next tick, up to a second later.
    return 0 if $cfg eq 'ocspstaple' && !wait_all_stapled($h, $n);
    return warm_until_stapled($h, names => $RELOAD_NAMES, timeout => $h->start_bound);
}

# Whether the generation started by the signal serves: Apache's parent
# logged AH00489 again (after OFFSET in its log) and runs a new child;
# nginx runs a new worker. OLD: the PIDs of the old generation.
sub new_generation {
    my ($h, $offset, $old) = @_;
    return scalar grep { !$old->{$_} } $h->workers if $h->isa('BenchKit::Nginx');
    return 0 unless $h->log_since($offset) =~ /AH00489/;
    my (undef, @kids) = $h->pids;
    return scalar grep { !$old->{$_} } @kids;
}

# One server's window: handshakes, the signal after reload_pre s, on until
# reload_post s after the new generation serves.
sub reload_window {
    my ($h, $resp, $cfg) = @_;
    my $bound = $h->start_bound;          # a restart loads everything again
    my $raw = "$OUT/reload-$cfg.latencies";
    my $offset = -s $h->errorlog // 0;
    my ($parent, @old) = $h->pids;
    my %old = map { $_ => 1 } @old;
    my $c = BenchKit::client_start(port => $h->port, sni => 'm%d.bench', names => $RELOAD_NAMES,
        key => 'ecdsa', tls => '1.3', threads => $RELOAD_THREADS, rate => $RELOAD_RATE,
        secs => $P{reload_pre} + $bound + $P{reload_post} + 5, timeout => $bound + 5, raw => $raw);
    sleep($P{reload_pre} - (time - $c->t0)) if time - $c->t0 < $P{reload_pre};
    my $t_sig = time;
    $h->graceful;
    my $back = BenchKit::wait_until($bound, sub { new_generation($h, $offset, \%old) }, 0.05);
    my $t_back = time;
    sleep($P{reload_post}) if $back;
    $c->end;
    my $res = eval { $c->result } // {};
    my $t_end = time;
    my $all = $res->{all} // {};
    # "STATUS LATENCY_US START_US PORT_INDEX" per handshake; START_US from
    # the client's start, about $c->t0 in the driver's clock.
    my @lat = map { [ split ' ' ] } split /\n/, BenchKit::slurp($raw);
    my $sig_us = ($t_sig - $c->t0) * 1e6;
    my @after = map { $_->[1] / 1000 } grep { $_->[2] >= $sig_us } @lat;
    my @done = sort { $a <=> $b } map { ($_->[2] + $_->[1]) / 1e6 } @lat;
    my $pause = 0;
    for my $i (1 .. $#done) {
        $pause = $done[$i] - $done[$i - 1] if $done[$i] - $done[$i - 1] > $pause;
    }
    return { %$all, back => $back ? $t_back - $t_sig : undef, window => $t_end - $c->t0,
             pause => $pause, after => pct_set(@after),
             requests => scalar($resp->times($c->t0, $t_end)),
             requests_reload => scalar($resp->times($t_sig, $t_back)),
             requests_after => scalar($resp->times($t_back, $t_end + 1)),
             log_errors => scalar(() = $h->log_since($offset)
                                       =~ /(?::|\[)(?:error|crit|alert|emerg)\]/g) };
}

sub reload_results {
    my ($r, $n) = @_;
    my $ratio = sub { my ($cfg, $k) = @_; my $z = $r->{ baseline_of($cfg) };
                      ($z->{$k} // 0) > 0 ? ($r->{$cfg}{$k} // 0) / $z->{$k} : 0 };
    my $lat = sub { my ($x) = @_; sprintf('%s / %s ms', ms($x->{p999_ms} // 0), ms($x->{max_ms} // 0)) };
    my $back = sub { my ($x) = @_; defined $x->{back} ? sprintf('%.1f', $x->{back}) : 'never' };
    # Served again, no errors, and every handshake stapled (none: none).
    my $clean = sub { my ($x, $staples) = @_;
        $x->{ready} && defined $x->{back} && $x->{handshakes} && !$x->{errors}
        && ($x->{stapled} // 0) == ($staples ? $x->{handshakes} : 0) };
    my %lat = map { my $cfg = $_;
        $cfg => sprintf('%s (%.2fx / %.2fx%s); %d of %d stapled', $lat->($r->{$cfg}),
                        $ratio->($cfg, 'p999_ms'), $ratio->($cfg, 'max_ms'),
                        $cfg eq 'nginx' ? ' of nginx without stapling' : '',
                        $r->{$cfg}{stapled} // 0, $r->{$cfg}{handshakes} // 0) } @PEERS;
    $lat{none} = $lat->($r->{none}) . '; nginx without stapling: ' . $lat->($r->{'nginx-none'});
    my ($rp, $rm) = ($ratio->('ocspstaple', 'p999_ms'), $ratio->('ocspstaple', 'max_ms'));
    my @rows = (
        { figure => "Graceful restart (nginx: reload), $n SNI vhosts, all stapled, handshakes "
                    . 'going on: handshake p99.9 / max across it (ratio to no stapling), staples',
          cols => \%lat,
          target => 'p99.9 across a graceful restart within 2x of no stapling; '
                    . 'no handshake waits on a responder',
          met => yn($rp && $rp <= 2 && $rm <= 2 && $clean->($r->{ocspstaple}, 1)
                    && $clean->($r->{none}, 0)) },
        { figure => "Graceful restart, $n SNI vhosts: handshakes/s across it "
                    . '(serving again after the signal)',
          cols => { map { $_ => sprintf('%.0f/s (%s s)', $r->{$_}{rate} // 0, $back->($r->{$_})) }
                    @PEERS, 'none' },
          target => '—', met => '—' },
    );
    $rows[1]{cols}{none} .= sprintf('; nginx without stapling: %.0f/s (%s s)',
                                    $r->{'nginx-none'}{rate} // 0, $back->($r->{'nginx-none'}));
    my @detail = ('| Server | ready before (s) | window (s) | serving again after the signal (s) '
        . '| longest time without a handshake done (s) | handshakes | stapled | errors '
        . '| handshakes/s | p50 | p99.9 | max (ms) | started after the signal: n, p50 / max (ms) '
        . '| responder requests: during the restart / after it |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for my $cfg (@RELOAD_CFGS) {
        my $x = $r->{$cfg};
        push @detail, sprintf('| %s | %.1f%s | %.1f | %s | %.2f | %d | %d | %d | %.0f | %s | %s | %s '
            . '| %d, %s / %s | %d / %d |', $CFG_NAME{$cfg}, $x->{ready_secs},
            $x->{ready} ? '' : ' (not all stapled)', $x->{window} // 0,
            defined $x->{back} ? sprintf('%.2f', $x->{back}) : 'never', $x->{pause} // 0,
            $x->{handshakes} // 0, $x->{stapled} // 0, $x->{errors} // 0, $x->{rate} // 0,
            (map { ms($x->{$_} // 0) } qw(p50_ms p999_ms max_ms)),
            $x->{after}{n}, ms($x->{after}{p50}), ms($x->{after}{max}),
            $x->{requests_reload} // 0, $x->{requests_after} // 0);
    }
    my @logerr = grep { $r->{$_}{log_errors} } @RELOAD_CFGS;
    push @detail, '', 'Error log lines at level error or worse during the window: '
        . join(', ', map { "$CFG_NAME{$_} $r->{$_}{log_errors}" } @logerr) . '.' if @logerr;
    push @detail, '', "Method: the scale scenario's $n virtual hosts (m1..m$n.bench, ECDSA "
        . 'certificates, CA-signed responses from one healthy loopback responder), one server '
        . 'per configuration, each measured alone, every peer with its defaults: '
        . 'mod_ocspstaple (the store on), mod_ssl `SSLUseStapling on` with `SSLStaplingCache '
        . 'shmcb`, mod_md `MDStapling on` (its store on), nginx `ssl_stapling on` (2 workers), '
        . 'and no stapling (Apache, and nginx for nginx\'s ratio). Once a server staples '
        . "(mod_ocspstaple: every one of the $n certificates, from its status page; the others: "
        . "the client's names, handshakes until all of them are stapled, as they fetch on "
        . 'demand or in the background) the client runs full handshakes (ECDSA, TLS 1.3, '
        . "status_request, no resumption) to m1..m$RELOAD_NAMES.bench, $RELOAD_RATE/s over "
        . "$RELOAD_THREADS connections; $P{reload_pre} s later the parent gets SIGUSR1 "
        . '(`apache2 -k graceful`; nginx: SIGHUP, `nginx -s reload`); the window ends '
        . "$P{reload_post} s after the new generation serves (Apache: the parent logged "
        . 'AH00489 again and a new child runs; nginx: a new worker runs). Percentiles and max: '
        . 'every handshake of the window, from connect() to the end of the handshake; a '
        . 'connection made while no process accepts waits in the listen backlog, so the time '
        . 'the restart kept the server from serving is in its latency. The client is paced '
        . 'and does not make up for handshakes it could not start, so handshakes/s (over the '
        . 'whole window) shows that time too. "Met" asks for p99.9 and max both within 2x of '
        . 'no stapling, no errors and every handshake stapled: a handshake held up by a '
        . 'responder during or after the restart shows in the max. Responder requests: during '
        . 'the restart (the signal until the new generation serves) and after it (until the '
        . 'window ends).';
    return { title => "Graceful restart: $n certificates", rows => \@rows,
             detail => join("\n", @detail) };
}

1;
