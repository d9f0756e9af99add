      if ${lname}_upd = '1' then
        write(o, string'("T "));
        write(o, sample);
        write(o, string'(" $index "));
        write(o, steps($index));
        write(o, ' ');
        write(o, bits(t${j}_spk));
        ints(o, ${lname}_v, NEURONS_BW);$syn
        writeline(res_f, o);
        steps($index) := steps($index) + 1;
      end if;
