  u_${lname} : entity work.$entity
    generic map (N_IN => ${P}_N_IN, N_OUT => ${P}_N_OUT, WB => WEIGHTS_BW, NB => NEURONS_BW,
                 ACC => ${P}_$acc, MODEL => $model, RESET => $reset, BETA_SHIFT => ${P}_BETA,
                 ALPHA_SHIFT => ${P}_ALPHA, THRESHOLD => ${P}_THRESHOLD, WEIGHTS => ${P}_WEIGHTS,
                 BANK_BITS => $bank_bits, EVENTS_PER_CYCLE => EVENTS_PER_CYCLE$layer_generic)
    port map (clk => clk, rst => rst,
              in_valid => t${i}_valid, in_ready => t${i}_ready, in_spikes => t${i}_data,
              in_last => t${i}_last,
              out_valid => t${j}_valid, out_ready => t${j}_ready, out_spikes => t${j}_data,
              out_last => t${j}_last, dbg_upd => ${lname}_upd, dbg_v => ${lname}_v, dbg_s => ${lname}_s);
