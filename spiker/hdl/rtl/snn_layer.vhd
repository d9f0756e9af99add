-- snn_layer: one fully connected layer of spiking neurons, event-driven, fully parallel.
--
-- One token per time step arrives on in_* (spike vector, `last` on a sample's last
-- step) with a valid/ready handshake and leaves on out_* (the layer's spikes).
-- Four stages:
--   input register: an accepted token is stored in `mask`; in_ready is a register
--     (not tok), so ready never travels combinationally from layer to layer.
--   issue: each cycle the event scan takes EVENTS_PER_CYCLE present spikes of `mask`
--     (lowest, and highest with 2) and clears them; the picks (found, index, and the
--     step's end mark on its last pick or on an empty step) go into the address register
--     `a_*`. Up to 128 inputs the mask is scanned in groups of GRP bits with one register
--     bit a group saying it is not empty (`nz`): the lowest and highest non-empty group
--     are a priority pick over those few bits, and only a group's own GRP-bit carry chain
--     is in the cycle, while the picks are exactly the lowest and highest of the whole mask.
--     A wider layer scans its mask window by window (SCAN_WINDOW).
--   ROM: the address register drives the synchronous weight ROM (a block RAM's address
--     register), whose rows are read with the micro-op `p_*` a cycle later.
--   neurons: N_OUT neuron_unit instances, each with one register and one adder (two
--     with 2 events a cycle): an event cycle adds the ROM row(s) read in the previous
--     cycle, then UPDATE_PHASES cycles apply saturation, threshold, leak and reset
--     (neuron_unit). During the last two of them the next token's first events are
--     issued, so the next step's rows arrive when the neurons are free again.
-- A step with a present spikes occupies max(ceil(a / EVENTS_PER_CYCLE), 1) + U cycles
-- while tokens keep coming (U = 2 for lif/if, 3 for syn); a token that finds the layer
-- waiting reaches its neurons 2 cycles after it was accepted. The update waits (first
-- phase) until the output register is free. After a `last` token the state restarts at
-- zero. The port list is the one every layer entity of the library shares.
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;
use work.spiker_pkg.all;

entity snn_layer is
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
    EVENTS_PER_CYCLE : positive range 1 to 2 := 2;  -- present input spikes visited per cycle
    -- inputs the event scan looks at in one cycle (a power of 2; 0: all inputs up to 128,
    -- else windows of 64): a wide layer scans its mask window by window
    SCAN_WINDOW : natural := 0;
    GRP : positive := 16;                -- group width of the whole-mask scan (a power of 2)
    -- a register between the weight ROM and the neurons (the row, with 2 events a cycle the two
    -- rows' sum): a short path from the block RAM's slow read, one more cycle of fill and
    -- N_OUT * (WB + EVENTS_PER_CYCLE - 1) flip-flops; false: the neurons add the ROM's rows
    ROW_REGISTER : boolean := true
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

architecture rtl of snn_layer is
  constant AW : positive := clog2(N_IN);
  function window_width return positive is
  begin
    if SCAN_WINDOW > 0 then
      return minimum(SCAN_WINDOW, 2 ** AW);
    elsif N_IN <= 128 then
      return N_IN;
    end if;
    return 64;
  end function;
  constant WW : positive := window_width;                 -- window width
  constant NW : positive := (N_IN + WW - 1) / WW;         -- windows
  constant WAW : positive := clog2(WW);                   -- index bits within a window
  constant NU : positive := update_phases(MODEL);
  function spike_phase return positive is
  begin
    if MODEL = MODEL_SYN then
      return 2;
    end if;
    return 1;
  end function;
  constant PA : positive := spike_phase;
  constant SUM_REG : boolean := ROW_REGISTER;  -- the row / sum register (neuron_unit SUM_REG)
  -- the ROM has one more row, all zero (ZROW): the address of a pick that is not there, so
  -- the two rows read are summed without a gate between the block RAM and the sum register
  constant RAW : positive := clog2(N_IN + 1);
  constant ZROW : natural := N_IN;

  -- grouped scan (NW = 1): groups of GR bits, NG of them
  constant GR : positive := minimum(GRP, 2 ** AW);
  constant NG : positive := (N_IN + GR - 1) / GR;
  constant GAW : positive := clog2(GR);

  -- the lowest set bit of v, one-hot (zero when v is), and the highest
  function lowest(v : std_logic_vector) return std_logic_vector is
    variable x : std_logic_vector(v'length - 1 downto 0);
  begin
    x := v;
    return x and std_logic_vector(unsigned(not x) + 1);
  end function;
  function highest(v : std_logic_vector) return std_logic_vector is
    variable x, r : std_logic_vector(v'length - 1 downto 0);
  begin
    x := v;
    for i in 0 to v'length - 1 loop
      r(i) := x(v'length - 1 - i);
    end loop;
    r := lowest(r);
    for i in 0 to v'length - 1 loop
      x(i) := r(v'length - 1 - i);
    end loop;
    return x;
  end function;
  function any(v : std_logic_vector) return std_logic is
  begin
    if unsigned(v) = 0 then
      return '0';
    end if;
    return '1';
  end function;
  -- the number of set bits of v (at most 64 bits) in w bits: a table for each 4 bits, then
  -- a balanced tree of adders
  function ones(v : std_logic_vector; w : positive) return unsigned is
    type table_t is array (0 to 15) of natural;
    constant T : table_t := (0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    constant NQ : positive := (v'length + 3) / 4;
    type sums_t is array (0 to 15) of unsigned(w - 1 downto 0);
    variable x : std_logic_vector(4 * NQ - 1 downto 0) := (others => '0');
    variable a : sums_t := (others => (others => '0'));
  begin
    x(v'length - 1 downto 0) := v;
    for q in 0 to NQ - 1 loop
      a(q) := to_unsigned(T(to_integer(unsigned(x(4 * q + 3 downto 4 * q)))), w);
    end loop;
    for lvl in 0 to 3 loop
      for i in 0 to 7 loop
        if 2 ** lvl * (2 * i + 1) < NQ then
          a(2 ** (lvl + 1) * i) := a(2 ** (lvl + 1) * i) + a(2 ** (lvl + 1) * i + 2 ** lvl);
        end if;
      end loop;
    end loop;
    return a(0);
  end function;
  -- group g of v (bits beyond v's length read as zero)
  function slice_of(v : std_logic_vector; g : natural) return std_logic_vector is
    variable r : std_logic_vector(GR - 1 downto 0) := (others => '0');
    variable x : std_logic_vector(v'length - 1 downto 0);
  begin
    x := v;
    for i in 0 to GR - 1 loop
      if g * GR + i < v'length then
        r(i) := x(g * GR + i);
      end if;
    end loop;
    return r;
  end function;

  -- input register and issue stage
  signal mask   : std_logic_vector(N_IN - 1 downto 0) := (others => '0');
  signal tok    : std_logic := '0';        -- mask holds a token whose events are not all issued
  signal tlast  : std_logic := '0';
  -- address register: the micro-op of the picks now addressing the ROM
  signal a_add1, a_add2, a_end, a_last : std_logic := '0';
  signal rom_addr, rom_addr2 : unsigned(RAW - 1 downto 0);  -- from the address register
  signal p_add1, p_add2, p_end, p_last : std_logic := '0';  -- micro-op of the ROM row(s) now read
  -- sum register (in neuron_unit, SUM_REG): the row(s) added, for the neurons' next cycle
  signal q_add, q_end, q_last : std_logic := '0';
  signal n_end, n_last : std_logic;        -- the end mark and last flag now at the neurons
  signal load, issue : std_logic;
  signal scan_found, scan_found2, scan_last : std_logic;
  signal scan_idx, scan_idx2 : unsigned(AW - 1 downto 0);
  signal scan_rest : std_logic_vector(N_IN - 1 downto 0);
  -- windowed scan (NW > 1): the window `win` of the mask, its picks and what is left of it
  signal win : natural range 0 to NW - 1 := 0;
  signal wvec, wrest : std_logic_vector(WW - 1 downto 0);
  signal widx, widx2 : unsigned(WAW - 1 downto 0);
  signal wfound, wfound2, wlast : std_logic;
  signal row, row2 : std_logic_vector(N_OUT * WB - 1 downto 0);

  -- neurons
  signal uph    : natural range 0 to 3 := 0;   -- 0: events, k: update phase k
  signal cur_last, fresh : std_logic := '0';
  signal ovalid, olast, upd_r : std_logic := '0';
  signal out_free, go : std_logic;
  signal u : std_logic_vector(1 to 3);
  signal add1, add2 : std_logic;
  signal spk : std_logic_vector(N_OUT - 1 downto 0);
begin
  in_ready <= not tok;

  load <= '1' when tok = '0' and in_valid = '1' else '0';

  -- the whole mask in NG groups: the lowest (highest) pick is the lowest (highest) bit of the
  -- lowest (highest) non-empty group, its index the group's number and the bit's index in it.
  -- Registers a group: not empty (nz), the lowest / highest non-empty one (lo / hi, one-hot)
  -- and its count of set bits, so which groups the picks empty, and the next lo / hi and the
  -- step's end, follow from registers without the groups' scans
  whole : if NW = 1 generate
    constant CW : positive := clog2(GR + 1);
    type gidx_t is array (0 to NG - 1) of unsigned(GAW - 1 downto 0);
    type gcnt_t is array (0 to NG - 1) of unsigned(CW - 1 downto 0);
    signal nz, lo, hi, a_lo, a_hi : std_logic_vector(NG - 1 downto 0) := (others => '0');
    signal a_gi, a_gi2 : gidx_t := (others => (others => '0'));
    signal cnt : gcnt_t := (others => (others => '0'));
    signal nz_in, nz_rest, le1 : std_logic_vector(NG - 1 downto 0);
    signal cnt_in, cnt_rest : gcnt_t;
    signal gi, gi2 : gidx_t;
  begin
    groups : for g in 0 to NG - 1 generate
      signal gv, glow, ghigh, grest : std_logic_vector(GR - 1 downto 0);
      signal k : unsigned(CW - 1 downto 0);
    begin
      gv <= slice_of(mask, g);
      u_scan : entity work.event_scan
        generic map (N_IN => GR, EVENTS => EVENTS_PER_CYCLE)
        port map (spikes => gv, found => open, idx => gi(g), found2 => open, idx2 => gi2(g),
                  rest => open, last => open, low_hot => glow, high_hot => ghigh);
      grest <= gv and not (glow and (GR - 1 downto 0 => lo(g)))
                  and not (ghigh and (GR - 1 downto 0 => hi(g)));
      bits : for i in 0 to GR - 1 generate
        in_mask : if g * GR + i < N_IN generate
          scan_rest(g * GR + i) <= grest(i);
        end generate;
      end generate;
      -- the picks this group gives (0, 1 or 2) and what they leave
      k <= to_unsigned(2, CW) when lo(g) = '1' and hi(g) = '1' else
           to_unsigned(1, CW) when lo(g) = '1' or hi(g) = '1' else to_unsigned(0, CW);
      cnt_rest(g) <= cnt(g) - k;
      le1(g) <= '1' when cnt(g) <= 1 else '0';
      nz_rest(g) <= '0' when cnt(g) <= k else nz(g);
      cnt_in(g) <= ones(slice_of(in_spikes, g), CW);
      nz_in(g) <= any(slice_of(in_spikes, g));
    end generate;

    -- the address register holds the picks' groups (one-hot) and their indices in every
    -- group; the group's number and its index are chosen after the register
    process (a_lo, a_hi, a_gi, a_gi2, a_add1, a_add2)
      variable i1, i2 : unsigned(RAW - 1 downto 0);
    begin
      i1 := (others => '0');
      i2 := (others => '0');
      for g in 0 to NG - 1 loop
        if a_lo(g) = '1' then
          i1 := i1 or resize(to_unsigned(g * GR, AW) + a_gi(g), RAW);
        end if;
        if a_hi(g) = '1' then
          i2 := i2 or resize(to_unsigned(g * GR, AW) + a_gi2(g), RAW);
        end if;
      end loop;
      rom_addr <= i1;
      rom_addr2 <= i2;
      if a_add1 = '0' then
        rom_addr <= to_unsigned(ZROW, RAW);
      end if;
      if a_add2 = '0' then
        rom_addr2 <= to_unsigned(ZROW, RAW);
      end if;
    end process;

    process (lo, hi, nz, nz_rest, le1)
    begin
      -- a second pick: in another group, or a second bit of the one group
      scan_found2 <= any(hi and not lo) or any(lo and hi and not le1);
      scan_found <= any(nz);
      scan_last <= not any(nz_rest);
    end process;

    process (clk)
    begin
      if rising_edge(clk) then
        if rst = '1' then
          nz <= (others => '0');
          lo <= (others => '0');
          hi <= (others => '0');
          cnt <= (others => (others => '0'));
        elsif load = '1' then
          nz <= nz_in;
          lo <= lowest(nz_in);
          if EVENTS_PER_CYCLE = 2 then
            hi <= highest(nz_in);
          end if;
          cnt <= cnt_in;
        elsif issue = '1' then
          a_lo <= lo;
          a_hi <= hi;
          a_gi <= gi;
          a_gi2 <= gi2;
          nz <= nz_rest;
          lo <= lowest(nz_rest);
          if EVENTS_PER_CYCLE = 2 then
            hi <= highest(nz_rest);
          end if;
          cnt <= cnt_rest;
        end if;
      end if;
    end process;
  end generate;

  -- a wide layer: the scan picks from one window a cycle (an empty window costs a cycle),
  -- the address is window & index (WW is a power of 2), the step ends with the last window
  windowed : if NW > 1 generate
    signal a_idx, a_idx2 : unsigned(RAW - 1 downto 0) := (others => '0');
  begin
    process (mask, win)
      variable v : std_logic_vector(WW - 1 downto 0);
    begin
      v := (others => '0');
      for w in 0 to NW - 1 loop
        if win = w then
          for i in 0 to WW - 1 loop
            if w * WW + i < N_IN then
              v(i) := mask(w * WW + i);
            end if;
          end loop;
        end if;
      end loop;
      wvec <= v;
    end process;

    u_scan : entity work.event_scan
      generic map (N_IN => WW, EVENTS => EVENTS_PER_CYCLE)
      port map (spikes => wvec, found => wfound, idx => widx, found2 => wfound2,
                idx2 => widx2, rest => wrest, last => wlast);

    process (mask, win, wrest)
      variable r : std_logic_vector(N_IN - 1 downto 0);
    begin
      r := mask;
      for w in 0 to NW - 1 loop
        if win = w then
          for i in 0 to WW - 1 loop
            if w * WW + i < N_IN then
              r(w * WW + i) := wrest(i);
            end if;
          end loop;
        end if;
      end loop;
      scan_rest <= r;
    end process;

    scan_idx <= resize(to_unsigned(win, AW - WAW) & widx, AW);
    scan_idx2 <= resize(to_unsigned(win, AW - WAW) & widx2, AW);

    -- the address register: the picks' indices (the zero row for a pick not there)
    process (clk)
    begin
      if rising_edge(clk) then
        if issue = '1' then
          a_idx <= to_unsigned(ZROW, RAW);
          a_idx2 <= to_unsigned(ZROW, RAW);
          if scan_found = '1' then
            a_idx <= resize(scan_idx, RAW);
          end if;
          if scan_found2 = '1' then
            a_idx2 <= resize(scan_idx2, RAW);
          end if;
        end if;
      end if;
    end process;
    rom_addr <= a_idx;
    rom_addr2 <= a_idx2;
    scan_found <= wfound;
    scan_found2 <= wfound2;
    scan_last <= wlast when win = NW - 1 else '0';
  end generate;

  u_rom : entity work.weight_rom
    generic map (N_IN => N_IN + 1, N_OUT => N_OUT, WB => WB, BANK_BITS => BANK_BITS,
                 WEIGHTS => WEIGHTS & integer_vector'(0 to N_OUT - 1 => 0),
                 PORTS => EVENTS_PER_CYCLE)
    port map (clk => clk, addr => rom_addr, row => row, addr2 => rom_addr2, row2 => row2);

  -- issue when the neurons take events D cycles later (ROM address, row, and the sum with
  -- SUM_REG: D = 3, else 2) and no end mark is ahead in the pipe: during events, then in the
  -- update phases whose picks arrive after the last one (phase >= U + 1 - D; phase 1 only once
  -- the update will not wait any more, with go; D = 3 lif/if also in the end mark's cycle when
  -- the output register is free)
  out_free <= (not ovalid) or out_ready;
  go <= '1' when uph /= 1 or out_free = '1' else '0';
  with_sum : if SUM_REG generate
    issue <= '1' when tok = '1' and a_end = '0' and p_end = '0' and
                      ((uph = 0 and (q_end = '0' or (NU = 2 and out_free = '1'))) or
                       (uph = 1 and go = '1') or uph >= 2) else '0';
    add1 <= q_add when uph = 0 else '0';
    add2 <= '0';
    n_end <= q_end;
    n_last <= q_last;
  end generate;
  without_sum : if not SUM_REG generate
    issue <= '1' when tok = '1' and a_end = '0' and
                      ((uph = 0 and p_end = '0') or (uph = 1 and NU = 2 and go = '1') or uph >= 2) else '0';
    add1 <= p_add1 when uph = 0 else '0';
    add2 <= p_add2 when uph = 0 else '0';
    n_end <= p_end;
    n_last <= p_last;
  end generate;
  u(1) <= '1' when uph = 1 and out_free = '1' else '0';
  u(2) <= '1' when uph = 2 else '0';
  u(3) <= '1' when uph = 3 else '0';

  u_neurons : entity work.neuron_unit
    generic map (N => N_OUT, NB => NB, ACC => ACC, WB => WB, MODEL => MODEL, RESET => RESET,
                 BETA_SHIFT => BETA_SHIFT, ALPHA_SHIFT => ALPHA_SHIFT, THRESHOLD => THRESHOLD,
                 EVENTS => EVENTS_PER_CYCLE, SUM_REG => SUM_REG)
    port map (clk => clk, rst => rst, add1 => add1, add2 => add2, w1 => row, w2 => row2,
              u => u, clear => cur_last, fresh => fresh, spike => spk, v_dbg => dbg_v, s_dbg => dbg_s);


  process (clk)
  begin
    if rising_edge(clk) then
      if rst = '1' then
        mask <= (others => '0');
        tok <= '0';
        tlast <= '0';
        a_add1 <= '0';
        a_add2 <= '0';
        a_end <= '0';
        a_last <= '0';
        p_add1 <= '0';
        p_add2 <= '0';
        p_end <= '0';
        p_last <= '0';
        q_add <= '0';
        q_end <= '0';
        q_last <= '0';
        uph <= 0;
        win <= 0;
        cur_last <= '0';
        fresh <= '1';
        ovalid <= '0';
        olast <= '0';
        upd_r <= '0';
      else
        upd_r <= '0';
        if ovalid = '1' and out_ready = '1' then
          ovalid <= '0';
        end if;

        -- input register
        if load = '1' then
          mask <= in_spikes;
          tok <= '1';
          tlast <= in_last;
        end if;

        -- issue stage, the ROM read, the sum
        q_add <= p_add1 or p_add2;
        q_end <= p_end;
        q_last <= p_last;
        p_add1 <= a_add1;
        p_add2 <= a_add2;
        p_end <= a_end;
        p_last <= a_last;
        a_add1 <= '0';
        a_add2 <= '0';
        a_end <= '0';
        if issue = '1' then
          a_add1 <= scan_found;
          a_add2 <= scan_found2;
          a_end <= scan_last;
          a_last <= tlast;
          mask <= scan_rest;
          if scan_last = '1' then
            tok <= '0';
          end if;
          if NW > 1 and wlast = '1' then  -- this window is done: the next one (0 after the last)
            if win = NW - 1 then
              win <= 0;
            else
              win <= win + 1;
            end if;
          end if;
        end if;

        -- neuron phases
        if uph = 0 then
          if n_end = '1' then
            uph <= 1;
            cur_last <= n_last;
          end if;
        elsif go = '1' then
          if uph = PA then
            ovalid <= '1';
            olast <= cur_last;
            upd_r <= '1';
          end if;
          if uph = NU then
            uph <= 0;
            fresh <= cur_last;
          else
            uph <= uph + 1;
          end if;
        end if;
      end if;
    end if;
  end process;

  out_valid <= ovalid;
  out_last <= olast;
  out_spikes <= spk;
  dbg_upd <= upd_r;
end architecture;
