-- snn_layer_tm: one fully connected layer of spiking neurons, event-driven and time-multiplexed:
-- NEURONS_PER_CYCLE (P) neuron update units serve the layer's N_OUT neurons in NG = ceil(N_OUT/P)
-- groups, with the membranes (synaptic currents, previous spikes) of each group in a RAM.
-- Same ports, generics and token protocol as snn_layer (plus NEURONS_PER_CYCLE), bit-exact to
-- the golden model through spiker_pkg's neuron_step.
--
-- Schedule of one step (started when the layer is idle, its pipeline empty and its output free):
--   START  the token's first input window (WINW inputs) is loaded; the token is read in place
--          (in_spikes must stay stable while in_valid is high, as AXI4-Stream requires);
--   SCAN   event_scan visits EVENTS_PER_CYCLE present spikes per cycle in the current window
--          (one cycle for an empty window) and writes their indices into the event list RAM,
--          paired two to a word when EVENTS_PER_CYCLE = 2;
--   FLUSH  the last odd index is written and the token is accepted (in_ready = '1');
--   REPLAY for each group of P neurons, the list is replayed (one word a cycle); a slot issues
--          the weight word(s) of (input, group) to the synchronous weight ROM, the next cycle
--          (stage B) adds them into the P accumulators and, on the group's last slot, applies
--          leak, reset, saturation and threshold (neuron_step) to the group's state read from
--          the state RAM, writes it back and sets the group's bits of the output register.
-- With K = max(ceil(a / E), 1) list words for a present spikes and S0 = sum over windows of
-- max(ceil(a_w / E), 1) scan cycles, a step occupies S0 + NG*K + 3 cycles (+1 when K = 1: the
-- list is read one cycle after its only write) while tokens keep coming and the output is taken.
-- The accumulator (ACC bits) holds any partial sum of a step's weights exactly, so the visiting
-- order cannot change a result. After a `last` token the state restarts at zero (the stale RAM
-- words are read as zero in the next step). dbg_v/dbg_s are shadow registers of all N_OUT
-- neurons, valid on dbg_upd; left open, synthesis removes them.
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;
use work.spiker_pkg.all;

entity snn_layer_tm is
  generic (
    N_IN        : positive;
    N_OUT       : positive;
    WB          : positive;              -- weights_bw
    NB          : positive;              -- neurons_bw
    ACC         : positive;              -- accumulator width (golden accumulator_bits)
    MODEL       : natural := MODEL_LIF;
    RESET       : natural := RESET_SUBTRACT;
    BETA_SHIFT  : integer := NO_LEAK;
    ALPHA_SHIFT : integer := NO_LEAK;
    THRESHOLD   : natural;
    WEIGHTS     : integer_vector;        -- WEIGHTS(i*N_OUT + j): input i -> neuron j
    BANK_BITS   : positive := 64;
    EVENTS_PER_CYCLE  : positive range 1 to 2 := 2;  -- present input spikes visited per cycle
    NEURONS_PER_CYCLE : positive := 1                -- P, 1 <= P <= N_OUT
  );
  port (
    clk       : in  std_logic;
    rst       : in  std_logic;           -- synchronous, active high
    in_valid  : in  std_logic;
    in_ready  : out std_logic;
    in_spikes : in  std_logic_vector(N_IN - 1 downto 0);
    in_last   : in  std_logic;
    out_valid : out std_logic;
    out_ready : in  std_logic;
    out_spikes: out std_logic_vector(N_OUT - 1 downto 0);
    out_last  : out std_logic;
    -- observation (simulation trace; leave open in a design)
    dbg_upd   : out std_logic;           -- '1' for one cycle when dbg_v/dbg_s/out_spikes are new
    dbg_v     : out std_logic_vector(N_OUT * NB - 1 downto 0);
    dbg_s     : out std_logic_vector(N_OUT * NB - 1 downto 0)
  );
end entity;

architecture rtl of snn_layer_tm is
  constant P     : positive := NEURONS_PER_CYCLE;
  constant E     : positive := EVENTS_PER_CYCLE;
  constant NG    : positive := (N_OUT + P - 1) / P;        -- neuron groups
  constant NSLOT : positive := (N_IN + E - 1) / E;         -- most event list words
  constant AW    : positive := clog2(N_IN);
  constant KW    : positive := clog2(NSLOT);
  constant GW    : positive := clog2(NG);
  constant WAW   : positive := clog2(N_IN * NG);
  constant LW    : positive := 2 * AW + 2;                 -- event list word: f2 idx2 f1 idx1
  constant SYN   : boolean := MODEL = MODEL_SYN;
  constant SWID  : positive := P * NB;
  -- input window of the scan: a power of two (16, or 32 for wide layers), or all inputs
  constant WINW  : positive := minimum(N_IN, 16 * (1 + N_IN / 512));
  constant NWIN  : positive := (N_IN + WINW - 1) / WINW;
  constant WSW   : positive := clog2(NWIN);
  constant LOCW  : positive := clog2(WINW);

  constant PH_IDLE   : std_logic_vector(2 downto 0) := "000";
  constant PH_SCAN   : std_logic_vector(2 downto 0) := "001";
  constant PH_FLUSH  : std_logic_vector(2 downto 0) := "010";
  constant PH_BUBBLE : std_logic_vector(2 downto 0) := "011";
  constant PH_REPLAY : std_logic_vector(2 downto 0) := "100";

  type acc_array is array (0 to P - 1) of signed(ACC - 1 downto 0);
  type win_array is array (0 to NWIN - 1) of std_logic_vector(WINW - 1 downto 0);

  signal phase  : std_logic_vector(2 downto 0) := PH_IDLE;
  signal win    : std_logic_vector(WINW - 1 downto 0) := (others => '0');
  signal wsel   : unsigned(WSW - 1 downto 0) := (others => '0');
  signal cnt    : unsigned(KW downto 0) := (others => '0');   -- list words written
  signal odd_v  : std_logic := '0';                           -- an unpaired index (E = 2)
  signal odd_i  : unsigned(AW - 1 downto 0) := (others => '0');
  signal k      : unsigned(KW - 1 downto 0) := (others => '0');
  signal kmax   : unsigned(KW - 1 downto 0) := (others => '0');
  signal g      : unsigned(GW - 1 downto 0) := (others => '0');
  signal last_r : std_logic := '0';
  signal fresh  : std_logic := '1';      -- this step starts a sample: the state is zero
  -- stage B: the slot issued in the previous cycle
  signal b_valid, b_f1, b_f2, b_last, b_final : std_logic := '0';
  signal b_g    : unsigned(GW - 1 downto 0) := (others => '0');
  signal accs   : acc_array := (others => (others => '0'));
  signal spk    : std_logic_vector(N_OUT - 1 downto 0) := (others => '0');
  signal ovalid, olast, upd_r : std_logic := '0';
  signal shadow_v, shadow_s : std_logic_vector(N_OUT * NB - 1 downto 0) := (others => '0');

  signal out_free, start, rdy, a_go, a_f1, a_f2, a_lastk : std_logic;
  signal a_idx, a_idx2 : unsigned(AW - 1 downto 0);
  signal scan_rest : std_logic_vector(WINW - 1 downto 0);
  signal scan_found, scan_found2, scan_last : std_logic;
  signal scan_idx, scan_idx2 : unsigned(LOCW - 1 downto 0);
  signal ev1, ev2 : unsigned(AW - 1 downto 0);
  signal list_we : std_logic;
  signal list_ra : unsigned(KW - 1 downto 0);
  signal list_wd, list_q : std_logic_vector(LW - 1 downto 0);
  signal waddr1, waddr2 : unsigned(WAW - 1 downto 0);
  signal row, row2 : std_logic_vector(P * WB - 1 downto 0);
  signal st_we : std_logic;
  signal v_wd, v_q, s_wd, s_q : std_logic_vector(SWID - 1 downto 0);
  signal r_wd, r_q : std_logic_vector(P - 1 downto 0);
  signal s_q_used : std_logic_vector(SWID - 1 downto 0);
  signal sums : acc_array;
  signal wins : win_array;
  signal wnext : std_logic_vector(WINW - 1 downto 0);

  function weight(r : std_logic_vector; j : natural) return signed is
  begin
    return resize(signed(r((j + 1) * WB - 1 + r'low downto j * WB + r'low)), ACC);
  end function;

  -- the token cut into windows of WINW inputs (zero beyond N_IN); read with an array index so
  -- that synthesis builds one balanced mux, not a chain of compares
  function windows(v : std_logic_vector) return win_array is
    variable x : std_logic_vector(N_IN - 1 downto 0);
    variable r : win_array := (others => (others => '0'));
  begin
    x := v;
    for i in 0 to NWIN - 1 loop
      for b in 0 to WINW - 1 loop
        if i * WINW + b < N_IN then
          r(i)(b) := x(i * WINW + b);
        end if;
      end loop;
    end loop;
    return r;
  end function;

  -- input index of bit `loc` of window `w`
  function input_index(w : unsigned; loc : unsigned) return unsigned is
  begin
    if NWIN = 1 then
      return resize(loc, AW);
    end if;
    return resize(w & loc, AW);
  end function;

  -- weight word of (input idx, group grp): idx * NG + grp, wiring when NG is a power of two,
  -- otherwise shifts and adds of the constant NG's set bits (no multiplier)
  function waddr(idx : unsigned; grp : unsigned) return unsigned is
    variable r : unsigned(WAW + AW + GW downto 0);
  begin
    if NG = 1 then
      return resize(idx, WAW);
    elsif 2 ** GW = NG then
      return resize(idx & grp, WAW);
    end if;
    r := resize(grp, r'length);
    for b in 0 to GW loop
      if (NG / 2 ** b) mod 2 = 1 then
        r := r + shift_left(resize(idx, r'length), b);
      end if;
    end loop;
    return resize(r, WAW);
  end function;

  function word(f2 : std_logic; i2 : unsigned; f1 : std_logic; i1 : unsigned) return std_logic_vector is
  begin
    return f2 & std_logic_vector(i2) & f1 & std_logic_vector(i1);
  end function;
begin
  assert P <= N_OUT report "snn_layer_tm: NEURONS_PER_CYCLE must be <= N_OUT" severity failure;
  assert WINW = N_IN or 2 ** LOCW = WINW report "snn_layer_tm: scan window must be a power of two" severity failure;

  out_free <= (not ovalid) or out_ready;
  start <= '1' when phase = PH_IDLE and b_valid = '0' and out_free = '1' and in_valid = '1' else '0';
  rdy <= '1' when phase = PH_FLUSH else '0';   -- the token is accepted once the scan has listed it
  in_ready <= rdy;

  u_scan : entity work.event_scan
    generic map (N_IN => WINW, EVENTS => E)
    port map (spikes => win, found => scan_found, idx => scan_idx, found2 => scan_found2,
              idx2 => scan_idx2, rest => scan_rest, last => scan_last);
  wins <= windows(in_spikes);
  one_window : if NWIN = 1 generate
    wnext <= (others => '0');
  end generate;
  more_windows : if NWIN > 1 generate
    signal wn : natural range 0 to NWIN - 1;
  begin
    wn <= to_integer(wsel) + 1 when to_integer(wsel) < NWIN - 1 else NWIN - 1;
    wnext <= wins(wn);
  end generate;
  ev1 <= input_index(wsel, scan_idx);
  ev2 <= input_index(wsel, scan_idx2);

  -- event list: SCAN writes full words (E = 1: one index; E = 2: pairs, an odd one waits in
  -- odd_i), FLUSH writes the odd one, or an empty word when the step has no spike
  process (phase, scan_found, scan_found2, ev1, ev2, odd_v, odd_i, cnt)
  begin
    list_we <= '0';
    list_wd <= word('0', ev2, scan_found, ev1);
    if phase = PH_SCAN then
      if E = 1 then
        list_we <= scan_found;
      elsif odd_v = '1' then
        list_we <= scan_found;
        list_wd <= word('1', ev1, '1', odd_i);
      else
        list_we <= scan_found2;
        list_wd <= word('1', ev2, '1', ev1);
      end if;
    elsif phase = PH_FLUSH then
      list_wd <= word('0', odd_i, odd_v, odd_i);
      if odd_v = '1' or cnt = 0 then
        list_we <= '1';
      end if;
    end if;
  end process;
  list_ra <= k + 1 when phase = PH_REPLAY and k /= kmax else (others => '0');

  u_list : entity work.snn_layer_tm_ram
    generic map (DEPTH => NSLOT, WIDTH => LW)
    port map (clk => clk, we => list_we, waddr => cnt(KW - 1 downto 0), wdata => list_wd, raddr => list_ra,
              rdata => list_q);

  -- stage A: the replayed slot
  a_go <= '1' when phase = PH_REPLAY else '0';
  a_idx <= unsigned(list_q(AW - 1 downto 0));
  a_f1 <= list_q(AW);
  a_idx2 <= unsigned(list_q(2 * AW downto AW + 1));
  a_f2 <= list_q(2 * AW + 1);
  a_lastk <= '1' when k = kmax else '0';

  waddr1 <= waddr(a_idx, g);
  waddr2 <= waddr(a_idx2, g);
  u_rom : entity work.snn_layer_tm_rom
    generic map (N_IN => N_IN, N_OUT => N_OUT, P => P, WB => WB, WEIGHTS => WEIGHTS,
                 BANK_BITS => BANK_BITS, EVENTS => E)
    port map (clk => clk, addr => waddr1, row => row, addr2 => waddr2, row2 => row2);

  -- state of the group: read for the slot in stage A, written back on its last slot in stage B
  st_we <= b_valid and b_last;
  u_v : entity work.snn_layer_tm_ram
    generic map (DEPTH => NG, WIDTH => SWID)
    port map (clk => clk, we => st_we, waddr => b_g, wdata => v_wd, raddr => g, rdata => v_q);
  u_r : entity work.snn_layer_tm_ram
    generic map (DEPTH => NG, WIDTH => P)
    port map (clk => clk, we => st_we, waddr => b_g, wdata => r_wd, raddr => g, rdata => r_q);
  syn_state : if SYN generate
    u_s : entity work.snn_layer_tm_ram
      generic map (DEPTH => NG, WIDTH => SWID)
      port map (clk => clk, we => st_we, waddr => b_g, wdata => s_wd, raddr => g, rdata => s_q);
    s_q_used <= s_q;
  end generate;
  no_syn_state : if not SYN generate
    s_q_used <= (others => '0');
  end generate;

  -- stage B datapath: accumulate, and on a group's last slot the neuron update
  datapath : process (accs, b_f1, b_f2, row, row2, v_q, s_q_used, r_q, fresh)
    variable cur : signed(ACC - 1 downto 0);
    variable vi, si, vn, sn : signed(NB - 1 downto 0);
    variable ri, sp : std_logic;
  begin
    for j in 0 to P - 1 loop
      cur := accs(j);
      if b_f1 = '1' then
        cur := cur + weight(row, j);
      end if;
      if b_f2 = '1' then
        cur := cur + weight(row2, j);
      end if;
      sums(j) <= cur;
      if fresh = '1' then
        vi := (others => '0');
        si := (others => '0');
        ri := '0';
      else
        vi := signed(v_q((j + 1) * NB - 1 downto j * NB));
        si := signed(s_q_used((j + 1) * NB - 1 downto j * NB));
        ri := r_q(j);
      end if;
      neuron_step(vi, si, ri, cur, NB, MODEL, RESET, BETA_SHIFT, ALPHA_SHIFT, THRESHOLD, vn, sn, sp);
      v_wd((j + 1) * NB - 1 downto j * NB) <= std_logic_vector(vn);
      s_wd((j + 1) * NB - 1 downto j * NB) <= std_logic_vector(sn);
      r_wd(j) <= sp;
    end loop;
  end process;

  process (clk)
  begin
    if rising_edge(clk) then
      if rst = '1' then
        phase <= PH_IDLE;
        win <= (others => '0');
        wsel <= (others => '0');
        cnt <= (others => '0');
        odd_v <= '0';
        k <= (others => '0');
        kmax <= (others => '0');
        g <= (others => '0');
        last_r <= '0';
        fresh <= '1';
        b_valid <= '0';
        b_f1 <= '0';
        b_f2 <= '0';
        b_last <= '0';
        b_final <= '0';
        b_g <= (others => '0');
        accs <= (others => (others => '0'));
        ovalid <= '0';
        olast <= '0';
        upd_r <= '0';
      else
        upd_r <= '0';
        if ovalid = '1' and out_ready = '1' then
          ovalid <= '0';
        end if;

        -- stage A -> B
        b_valid <= a_go;
        b_f1 <= a_go and a_f1;
        b_f2 <= a_go and a_f2;
        b_last <= a_lastk;
        b_g <= g;
        if a_go = '1' and a_lastk = '1' and g = NG - 1 then
          b_final <= '1';
        else
          b_final <= '0';
        end if;

        if list_we = '1' then
          cnt <= cnt + 1;
        end if;

        if start = '1' then
          win <= wins(0);
          wsel <= (others => '0');
          cnt <= (others => '0');
          odd_v <= '0';
          phase <= PH_SCAN;
        elsif phase = PH_SCAN then
          if E = 2 then
            if odd_v = '1' and scan_found = '1' then
              odd_v <= scan_found2;
              odd_i <= ev2;
            elsif odd_v = '0' and scan_found = '1' and scan_found2 = '0' then
              odd_v <= '1';
              odd_i <= ev1;
            end if;
          end if;
          if scan_last = '1' then
            if wsel = NWIN - 1 then
              phase <= PH_FLUSH;
            else
              wsel <= wsel + 1;
              win <= wnext;
            end if;
          else
            win <= scan_rest;
          end if;
        elsif phase = PH_FLUSH then
          last_r <= in_last;
          k <= (others => '0');
          g <= (others => '0');
          if cnt = 0 or (cnt = 1 and odd_v = '0') then
            kmax <= (others => '0');
            phase <= PH_BUBBLE;
          else
            if odd_v = '1' then
              kmax <= resize(cnt, KW);
            else
              kmax <= resize(cnt - 1, KW);
            end if;
            phase <= PH_REPLAY;
          end if;
        elsif phase = PH_BUBBLE then
          phase <= PH_REPLAY;
        elsif phase = PH_REPLAY then
          if k = kmax then
            k <= (others => '0');
            if g = NG - 1 then
              phase <= PH_IDLE;
              g <= (others => '0');
            else
              g <= g + 1;
            end if;
          else
            k <= k + 1;
          end if;
        end if;

        -- stage B
        if b_valid = '1' then
          for j in 0 to P - 1 loop
            if b_last = '1' then
              accs(j) <= (others => '0');
            else
              accs(j) <= sums(j);
            end if;
          end loop;
          if b_last = '1' then
            for n in 0 to N_OUT - 1 loop
              if to_integer(b_g) = n / P then
                spk(n) <= r_wd(n mod P);
                shadow_v((n + 1) * NB - 1 downto n * NB) <= v_wd((n mod P + 1) * NB - 1 downto (n mod P) * NB);
                if SYN then
                  shadow_s((n + 1) * NB - 1 downto n * NB) <= s_wd((n mod P + 1) * NB - 1 downto (n mod P) * NB);
                end if;
              end if;
            end loop;
          end if;
          if b_final = '1' then
            ovalid <= '1';
            olast <= last_r;
            upd_r <= '1';
            fresh <= last_r;
          end if;
        end if;
      end if;
    end if;
  end process;

  out_valid <= ovalid;
  out_last <= olast;
  out_spikes <= spk;
  dbg_upd <= upd_r;
  dbg_v <= shadow_v;
  dbg_s <= shadow_s;
end architecture;
