# The Debian package, as an admin meets it: `make deb` builds
# libapache2-mod-ocspstaple (build/deb/), `dpkg -i` installs it on this
# machine (as CI does), a private Apache enables it the Debian way and
# staples, `dpkg --purge` takes everything away again.
#
# The system's Apache is never touched: no service, no /etc/apache2 change.
# The private server has a config directory of its own whose mods-available
# is a symlink to the installed /etc/apache2/mods-available; `a2enmod
# ocspstaple` runs with APACHE_CONFDIR pointing there (and its state in the
# work directory), so the installed ocspstaple.load and its `# Depends: ssl
# socache_shmcb` line decide what gets loaded, from where: the installed
# /usr/lib/apache2/modules/mod_ocspstaple.so. The server runs as www-data
# without an OCSPStaplingStore line, so it writes into the store the
# package created (/var/cache/apache2/ocspstaple).
#
# Installs and purges a package system-wide, so it runs only when nothing of
# the package is on the machine before (not installed, none of its files
# present): it never removes what it did not install. The server is
# stopped and the package purged even when the test fails or is
# interrupted (END). The rest of the suite is unaffected: it loads the
# module of the build tree (OCSP_MODULE), never /usr/lib's.
# Runs as root only (make test runs it so). On its own:
#   prove -v -I t/lib t/root/30-package.t
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use File::Path qw(make_path);
use OCSPServer qw(:root setup handshake describe wait_until);

my $PKG    = 'libapache2-mod-ocspstaple';
my $SO     = '/usr/lib/apache2/modules/mod_ocspstaple.so';
my $AVAIL  = '/etc/apache2/mods-available';
my $STORE  = '/var/cache/apache2/ocspstaple';
my @FILES  = ($SO, "$AVAIL/ocspstaple.load", "$AVAIL/ocspstaple.conf");
my $USER   = 'www-data';        # Debian's server user, the store's owner

plan skip_all => 'installs a Debian package: runs as root (make test runs it so)' if $> != 0;
plan skip_all => 'not a Debian system with apache2 (no dpkg, a2enmod or '
    . "$AVAIL)" unless -x '/usr/bin/dpkg' && -x '/usr/sbin/a2enmod' && -d $AVAIL;
plan skip_all => "no user $USER" unless getpwnam($USER);
plan skip_all => "$PKG is on this machine (" . status() . '): not ours to purge'
    if status() ne '';
if (my @there = grep { -e } @FILES, $STORE) {
    plan skip_all => "@there exist(s) without the package (make install?): "
        . 'dpkg -i would take them over and the purge delete them';
}

plan tests => 24;
OCSPServer::deadline(600);      # a first `make deb` compiles and runs lintian

sub owner { my @s = lstat $_[0]; @s ? (getpwuid($s[4]))[0] // $s[4] : 'missing' }
sub mode  { my @s = lstat $_[0]; @s ? sprintf('%04o', $s[2] & 07777) : 'missing' }
# dpkg's status of the package: "install ok installed", "deinstall ok
# config-files" (removed, conffiles left), ..., or '' when dpkg has no
# record of it (never installed, or purged).
sub status {
    my $st = `dpkg-query -W -f='\${Status}' $PKG 2>/dev/null`;
    return $st =~ /not-installed/ ? '' : $st;
}
sub installed { status() =~ /\binstalled\z/ }
sub enabled_system { join ' ', sort map { s{.*/}{}r } glob '/etc/apache2/mods-enabled/*' }

# ---- cleanup guard: stop our server, then purge what we installed -----------
# Our END runs before OCSPServer's (defined later, run earlier): the server
# goes down here first, so the purge never pulls the module from under it.
my ($h, $we_installed);
END {
    my $rc = $?;
    $h->stop if $h;
    # Any state counts: a purge cut short (a signal) leaves config-files.
    if ($we_installed && status() ne '') {
        diag("cleanup: dpkg --purge $PKG");
        system('dpkg', '--purge', $PKG);
    }
    $? = $rc;
}

my $root = $OCSPServer::ROOT;
my $system_mods = enabled_system();

# ---- build -------------------------------------------------------------------
# make decides: nothing to do when build/deb/ holds a package newer than
# every file that goes into it. Our make flags are not the package build's.
my $built = do {
    local @ENV{qw(MAKEFLAGS MAKELEVEL MFLAGS)};
    delete @ENV{qw(MAKEFLAGS MAKELEVEL MFLAGS)};
    OCSPTest::run_capture('make', '-C', $root, '--no-print-directory', 'deb');
};
is($?, 0, 'make deb') or diag($built);
my ($version) = OCSPServer::slurp("$root/debian/changelog") =~ /^\S+ \(([^)]+)\)/;
chomp(my $arch = `dpkg --print-architecture`);
my $deb = "$root/build/deb/${PKG}_${version}_$arch.deb";
ok(-f $deb, "the package: build/deb/${PKG}_${version}_$arch.deb")
    or BAIL_OUT('no package');

# ---- install -------------------------------------------------------------------
my ($w, $pki, $resp) = setup();
our $MACHINE = OCSPServer::machine_lock();   # until the END's purge is done
$we_installed = 1;              # from here on, END purges
my $out = OCSPTest::run_capture('dpkg', '-i', $deb);
is($?, 0, 'dpkg -i installs it') or diag($out);
ok(installed(), "dpkg reports $PKG installed");
ok(!grep({ !-f } @FILES), 'the module and its mods-available files are in place: '
   . join(' ', @FILES)) or diag(map { "$_: " . (-e $_ ? "present\n" : "missing\n") } @FILES);
like(OCSPServer::slurp("$AVAIL/ocspstaple.load"),
     qr{^# Depends: ssl socache_shmcb$}m, 'ocspstaple.load declares its dependencies for a2enmod');
is(join(' ', owner($STORE), mode($STORE)), "$USER 0700",
   "the store directory $STORE: ${USER}'s, mode 0700");
is(enabled_system(), $system_mods, "the system's mods-enabled is unchanged (not enabled on install)");

# ---- a private config directory, the module enabled with a2enmod ------------
my $confdir = "$w/apache2";
make_path("$confdir/mods-enabled", "$w/a2state");
symlink($AVAIL, "$confdir/mods-available") or die "symlink: $!";
{
    local %ENV = %ENV;
    delete $ENV{APACHE_ENVVARS};                # no envvars file: a2enmod skips it
    $ENV{APACHE_CONFDIR} = $confdir;
    $ENV{APACHE_STATE_DIRECTORY} = "$w/a2state";
    $out = OCSPTest::run_capture('a2enmod', 'ocspstaple');
}
is($?, 0, 'a2enmod ocspstaple (APACHE_CONFDIR: the private config directory)') or diag($out);
my @want = qw(ocspstaple.load ocspstaple.conf ssl.load ssl.conf socache_shmcb.load);
my @missing = grep { (readlink("$confdir/mods-enabled/$_") // '') ne "../mods-available/$_" } @want;
ok(!@missing, "a2enmod enabled it and what the Depends: lines name: @want")
    or diag("missing or wrong: @missing\n$out");
is(enabled_system(), $system_mods, "the system's mods-enabled is still unchanged");

# ---- a private Apache loads the installed module and staples -----------------
$resp->start;
$h = PackageHttpd->new(dir => $w, pki => $pki, user => $USER, confdir => $confdir,
                       vhosts => [ { name => 'rsa.test', cert => 'rsa' } ]);
ok($h->start(timeout => 60), 'a private Apache starts from the private config directory')
    or BAIL_OUT('no server');
my $maps = OCSPServer::slurp('/proc/' . $h->pid . '/maps');
ok(index($maps, $SO) >= 0, "it has the installed $SO loaded");
unlike(OCSPServer::slurp($h->{conf}), qr/^\s*LoadModule\s+ocspstaple_module/m,
       '... through mods-enabled only (its own config names no module file)');
my $r = handshake($h->port, 'rsa.test');
ok($r->{stapled} && ($r->{resp_status} // '') eq 'successful'
   && ($r->{cert_status} // '') eq 'good',
   'the handshake carries a staple: successful, Cert Status: good') or diag(describe($r));
my $file = "$STORE/" . $pki->cert_id('rsa') . '.der';
ok(wait_until(15, sub { -f $file }, 0.1), "the response is kept in the package's store")
    or diag($h->log_lines(qr/OCSPSTAPLE/));
is(join(' ', owner($file), mode($file)), "$USER 0600", "... ${USER}'s, mode 0600");
my @bad = $h->log_lines(qr/\[ocspstaple:(?:warn|error|crit|alert|emerg)\]/);
ok(!@bad, 'no warning or error from the module') or diag(@bad);
$h->stop;
ok(!$h->alive, 'the private Apache stopped');
$h = undef;

# ---- purge -----------------------------------------------------------------------
$out = OCSPTest::run_capture('dpkg', '--purge', $PKG);
is($?, 0, "dpkg --purge $PKG") or diag($out);
ok(!installed(), 'dpkg reports it not installed');
my @left = grep { -e || -l } @FILES, $STORE;
ok(!@left, 'the module, the mods-available files and the store are gone') or diag("@left");
is(status(), '', 'dpkg has no record of it left: purged, not just removed (no config-files)');
is(enabled_system(), $system_mods, "the system's mods-enabled is unchanged at the end");
$we_installed = 0;

# ---- the private server ------------------------------------------------------------
# OCSPServer::Httpd (start, stop, logs, pid checks) with a Debian-style
# config: the modules come from CONFDIR/mods-enabled, as a2enmod left it.
package PackageHttpd;
use parent -norequire, 'OCSPServer::Httpd';

sub write_config {
    my ($self) = @_;
    my $dir = $self->{dir};
    my $run = $self->{rundir};
    File::Path::make_path($run, "$dir/htdocs");
    chmod 0755, $dir, $run, "$dir/htdocs";      # the children (User) reach them
    my $port = $self->{port};
    my $m = $OCSPServer::MODDIR;
    my $conf = <<"EOF";
# written by $0: the modules come from mods-enabled (a2enmod)
ServerRoot "$self->{confdir}"
ServerName 127.0.0.1
PidFile "$self->{pidfile}"
ErrorLog "$self->{errorlog}"
DefaultRuntimeDir "$run"
# mods-available/ssl.conf puts its session cache in \${APACHE_RUN_DIR}
Define APACHE_RUN_DIR "$run"
Mutex file:$run default
LogLevel info ocspstaple:debug
User $self->{user}
Group $self->{group}
LoadModule mpm_event_module $m/mod_mpm_event.so
LoadModule authz_core_module $m/mod_authz_core.so
IncludeOptional mods-enabled/*.load
IncludeOptional mods-enabled/*.conf
DocumentRoot "$dir/htdocs"
Listen 127.0.0.1:$port
EOF
    for my $v (@{ $self->{vhosts} }) {
        my ($crt, $key) = ($self->{pki}->crt($v->{cert}), $self->{pki}->key($v->{cert}));
        $conf .= <<"EOF";
<VirtualHost 127.0.0.1:$port>
    ServerName $v->{name}
    SSLEngine on
    SSLCertificateFile "$crt"
    SSLCertificateKeyFile "$key"
    OCSPUseStapling on
</VirtualHost>
EOF
    }
    open my $fh, '>', $self->{conf} or die "$self->{conf}: $!";
    print $fh $conf;
    close $fh or die "$self->{conf}: $!";
}
